"""Signed frames around every task and result envelope.

A task runs cloudpickled code, so whoever can write to Redis could run code on every
worker. Each envelope therefore travels in a frame::

    b"\\x01" + HMAC-SHA256(secret, envelope) + envelope      signed
    b"\\x00" + envelope                                      unsigned

and is verified, in constant time, before anything in it is decoded or unpickled.
Producers and workers share the secret (``Config.secret``, ``Producer(secret=...)`` or
``$TASKER_SECRET``). Without one, producers refuse to queue and workers refuse to run
unless ``allow_unsigned=True`` says that Redis is trusted; results are signed the same way.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError, PayloadRejected

__all__ = ["SECRET_ENV", "Signer", "resolve_secret"]

SECRET_ENV = "TASKER_SECRET"
_SIGNED = 1
_UNSIGNED = 0
_SIGNED_PREFIX = bytes((_SIGNED,))
_UNSIGNED_PREFIX = bytes((_UNSIGNED,))
_MAC_BYTES = 32
_BLOCK_BYTES = 64  # SHA-256's
_NO_SECRET = (
    f"no secret: set ${SECRET_ENV} (the same on producers and workers), pass secret=..., "
    "or pass allow_unsigned=True if only trusted code can write to this Redis"
)


def resolve_secret(secret: str | bytes | None) -> bytes | None:
    """The secret to use: the given one, else ``$TASKER_SECRET``, else None."""
    if secret is None:
        secret = os.environ.get(SECRET_ENV) or None
    if isinstance(secret, str):
        secret = secret.encode()
    if secret is not None and not isinstance(secret, bytes):
        raise ConfigError(f"secret must be str or bytes, got {type(secret).__qualname__}")
    if secret is not None and len(secret) < 16:
        raise ConfigError("secret must be at least 16 bytes long")
    return secret


@dataclass(frozen=True)
class Signer:
    """Seals envelopes into frames and opens frames back into envelopes."""

    secret: bytes | None
    allow_unsigned: bool = False
    # HMAC-SHA256 (RFC 2104) from its two keyed SHA-256 states, each copied per frame:
    # a third cheaper than copying an `hmac.HMAC` (two MACs per task); the tests check
    # it against `hmac` for keys of every length class.
    _inner: Any = field(default=None, init=False, repr=False, compare=False)
    _outer: Any = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.secret is not None:
            key = self.secret
            if len(key) > _BLOCK_BYTES:
                key = hashlib.sha256(key).digest()
            key = key.ljust(_BLOCK_BYTES, b"\0")
            object.__setattr__(self, "_inner", hashlib.sha256(bytes(b ^ 0x36 for b in key)))
            object.__setattr__(self, "_outer", hashlib.sha256(bytes(b ^ 0x5C for b in key)))

    def _mac(self, envelope: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(envelope)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()  # type: ignore[no-any-return]

    @classmethod
    def from_settings(cls, secret: str | bytes | None, allow_unsigned: bool) -> Signer:
        return cls(resolve_secret(secret), allow_unsigned)

    def check_can_seal(self) -> None:
        """Raise `ConfigError` unless this side may send envelopes (before any write)."""
        if self.secret is None and not self.allow_unsigned:
            raise ConfigError(_NO_SECRET)

    def seal(self, envelope: bytes) -> bytes:
        if self.secret is None:
            self.check_can_seal()
            return _UNSIGNED_PREFIX + envelope
        return _SIGNED_PREFIX + self._mac(envelope) + envelope

    def open(self, frame: bytes) -> bytes:
        """The envelope inside ``frame``; raises `PayloadRejected` saying why not."""
        if not frame:
            raise PayloadRejected("empty payload")
        kind = frame[0]
        if kind == _SIGNED:
            if self.secret is None:
                raise PayloadRejected(f"signed payload, but this side has no secret ({_NO_SECRET})")
            envelope = frame[1 + _MAC_BYTES :]
            if len(frame) < 1 + _MAC_BYTES or not hmac.compare_digest(
                self._mac(envelope), frame[1 : 1 + _MAC_BYTES]
            ):
                raise PayloadRejected(
                    "signature did not verify (a different secret, or the payload was altered)"
                )
            return envelope
        if kind == _UNSIGNED:
            if self.allow_unsigned:
                return frame[1:]
            if self.secret is not None:
                raise PayloadRejected("unsigned payload refused: this side requires signatures")
            raise PayloadRejected(f"unsigned payload refused: {_NO_SECRET}")
        raise PayloadRejected(f"not a tasker-dist payload (frame type {kind:#04x})")

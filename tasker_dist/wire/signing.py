"""Signed frames around every task and result envelope.

A task runs cloudpickled code, so whoever can write to Redis could run code on every
worker. Each envelope therefore travels in a frame::

    b"\\x01" + HMAC-SHA256(secret, queue + envelope) + envelope      signed
    b"\\x00" + envelope                                              unsigned

(``queue`` as its length in two bytes and its UTF-8 bytes), so a frame signed for one
queue does not verify on another, and is verified, in constant time, before anything
in it is decoded or unpickled.
Producers and workers share the secret (``Config.secret``, ``Producer(secret=...)`` or
``$TASKER_SECRET``). Without one, producers refuse to queue and workers refuse to run
unless ``allow_unsigned=True`` says that Redis is trusted; results are signed the same way.

To rotate the secret without downtime, frames signed with one of the previous secrets
(``Config.previous_secrets``, ``$TASKER_SECRET_PREVIOUS``) are accepted too; frames are
always signed with the current one. The README gives the steps.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Sequence
from typing import Any

from ..errors import ConfigError, PayloadRejected

__all__ = [
    "PREVIOUS_SECRETS_ENV",
    "SECRET_ENV",
    "Signer",
    "resolve_previous",
    "resolve_secret",
    "unverified_contents",
]

SECRET_ENV = "TASKER_SECRET"
#: Secrets also accepted when verifying (comma-separated), during a rotation.
PREVIOUS_SECRETS_ENV = "TASKER_SECRET_PREVIOUS"
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


def _check(secret: object, name: str) -> bytes:
    if isinstance(secret, str):
        secret = secret.encode()
    if not isinstance(secret, bytes):
        raise ConfigError(f"{name} must be str or bytes, got {type(secret).__qualname__}")
    if len(secret) < 16:
        raise ConfigError(f"{name} must be at least 16 bytes long")
    return secret


def resolve_secret(secret: str | bytes | None) -> bytes | None:
    """The secret to use: the given one, else ``$TASKER_SECRET``, else None."""
    if secret is None:
        secret = os.environ.get(SECRET_ENV) or None
    return None if secret is None else _check(secret, "secret")


def resolve_previous(previous: Sequence[str | bytes] | None) -> tuple[bytes, ...]:
    """The secrets also accepted: the given ones, else those in
    ``$TASKER_SECRET_PREVIOUS`` (comma-separated), else none."""
    if previous is None:
        previous = [p for p in os.environ.get(PREVIOUS_SECRETS_ENV, "").split(",") if p]
    if isinstance(previous, str | bytes):
        raise ConfigError("previous_secrets must be a sequence of secrets, not one secret")
    return tuple(_check(p, "each previous secret") for p in previous)


def _hmac_states(key: bytes, queue: bytes) -> tuple[Any, Any]:
    """HMAC-SHA256 (RFC 2104) as its two keyed SHA-256 states, each copied per frame: a
    third cheaper than copying an `hmac.HMAC` (two MACs per task); the tests check it
    against `hmac` for keys of every length class. The inner state has already taken
    in the queue, so binding frames to it costs nothing per frame."""
    if len(key) > _BLOCK_BYTES:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK_BYTES, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
    inner.update(len(queue).to_bytes(2, "big") + queue)
    return inner, hashlib.sha256(bytes(b ^ 0x5C for b in key))


def _mac(states: tuple[Any, Any], envelope: bytes) -> bytes:
    inner = states[0].copy()
    inner.update(envelope)
    outer = states[1].copy()
    outer.update(inner.digest())
    return outer.digest()  # type: ignore[no-any-return]


def unverified_contents(frame: bytes) -> bytes:
    """The envelope inside ``frame`` without checking its signature: only for reading
    which task a frame that failed verification is about, never for using its contents."""
    if frame[:1] == _SIGNED_PREFIX:
        return frame[1 + _MAC_BYTES :]
    return frame[1:]


class Signer:
    """Seals envelopes into frames for ``queue`` (with ``secret``) and opens frames of
    that queue back into envelopes (signed with ``secret`` or one of ``previous``, the
    keys accepted during a rotation). Its repr never shows a key."""

    __slots__ = ("_previous", "_states", "allow_unsigned", "queue", "secret")

    def __init__(
        self,
        secret: bytes | None,
        allow_unsigned: bool = False,
        previous: Sequence[bytes] = (),
        *,
        queue: str,
    ) -> None:
        if previous and secret is None:
            raise ConfigError(f"previous secrets are set (${PREVIOUS_SECRETS_ENV}) but no "
                              f"secret to sign with (${SECRET_ENV})")  # fmt: skip
        self.secret = secret
        self.allow_unsigned = allow_unsigned
        self.queue = queue
        bound = queue.encode()
        self._states = None if secret is None else _hmac_states(secret, bound)
        self._previous = tuple(_hmac_states(key, bound) for key in previous)

    def __repr__(self) -> str:
        keys = "no secret" if self.secret is None else "a secret (hidden)"
        if self._previous:
            keys += f" and {len(self._previous)} previous (hidden)"
        return f"Signer({keys}, allow_unsigned={self.allow_unsigned}, queue={self.queue!r})"

    @classmethod
    def from_settings(
        cls,
        secret: str | bytes | None,
        allow_unsigned: bool,
        previous: Sequence[str | bytes] | None = None,
        *,
        queue: str,
    ) -> Signer:
        """From settings that default to the environment (``$TASKER_SECRET``,
        ``$TASKER_SECRET_PREVIOUS``)."""
        return cls(resolve_secret(secret), allow_unsigned, resolve_previous(previous), queue=queue)

    def check_can_seal(self) -> None:
        """Raise `ConfigError` unless this side may send envelopes (before any write)."""
        if self.secret is None and not self.allow_unsigned:
            raise ConfigError(_NO_SECRET)

    def seal(self, envelope: bytes) -> bytes:
        if self._states is None:
            self.check_can_seal()
            return _UNSIGNED_PREFIX + envelope
        return _SIGNED_PREFIX + _mac(self._states, envelope) + envelope

    def open(self, frame: bytes) -> bytes:
        """The envelope inside ``frame``; raises `PayloadRejected` saying why not."""
        if not frame:
            raise PayloadRejected("empty payload")
        kind = frame[0]
        if kind == _SIGNED:
            if self._states is None:
                raise PayloadRejected(f"signed payload, but this side has no secret ({_NO_SECRET})")
            envelope = frame[1 + _MAC_BYTES :]
            if len(frame) < 1 + _MAC_BYTES or not self._verifies(
                envelope, frame[1 : 1 + _MAC_BYTES]
            ):
                raise PayloadRejected(
                    "signature did not verify (a different secret, a payload signed for "
                    f"another queue than {self.queue!r}, or the payload was altered)"
                )
            return envelope
        if kind == _UNSIGNED:
            if self.allow_unsigned:
                return frame[1:]
            if self.secret is not None:
                raise PayloadRejected("unsigned payload refused: this side requires signatures")
            raise PayloadRejected(f"unsigned payload refused: {_NO_SECRET}")
        raise PayloadRejected(f"not a tasker-dist payload (frame type {kind:#04x})")

    def _verifies(self, envelope: bytes, mac: bytes) -> bool:
        assert self._states is not None
        if hmac.compare_digest(_mac(self._states, envelope), mac):
            return True
        # Only during a rotation, and only for frames of the other key: no cost otherwise.
        return any(hmac.compare_digest(_mac(states, envelope), mac) for states in self._previous)

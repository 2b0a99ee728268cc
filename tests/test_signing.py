"""Signed frames (SPEC §7): unit tests of `tasker_dist.wire.signing`, no Redis."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from tasker_dist import ConfigError, PayloadRejected, Producer
from tasker_dist.wire.signing import Signer, resolve_secret

SECRET = b"k" * 32
ENVELOPE = b"\x98\x01\xa1t\xc4\x02fn"


def test_seal_then_open_returns_the_envelope() -> None:
    signer = Signer(SECRET)
    frame = signer.seal(ENVELOPE)
    assert frame != ENVELOPE
    assert frame.endswith(ENVELOPE)
    assert signer.open(frame) == ENVELOPE


@pytest.mark.parametrize("position", [0, 1, 20, 33, -1])
def test_any_altered_byte_is_refused(position: int) -> None:
    frame = bytearray(Signer(SECRET).seal(ENVELOPE))
    frame[position] ^= 0x01
    with pytest.raises(PayloadRejected):
        Signer(SECRET).open(bytes(frame))


@pytest.mark.parametrize("key_bytes", [16, 32, 63, 64, 65, 200])
@pytest.mark.parametrize("envelope", [b"", b"x", b"\x00\xff" * 1000])
def test_frames_carry_the_standard_hmac_sha256(key_bytes: int, envelope: bytes) -> None:
    # Any HMAC-SHA256 implementation (another language's worker, an auditor) must agree.
    secret = bytes(range(256))[:key_bytes]
    frame = Signer(secret).seal(envelope)
    assert frame[1:33] == hmac.new(secret, envelope, hashlib.sha256).digest()
    assert frame == b"\x01" + frame[1:33] + envelope


def test_a_different_secret_does_not_verify() -> None:
    frame = Signer(b"x" * 32).seal(ENVELOPE)
    with pytest.raises(PayloadRejected, match="signature did not verify"):
        Signer(SECRET).open(frame)


def test_unsigned_frames_are_refused_unless_allowed() -> None:
    unsigned = Signer(None, allow_unsigned=True).seal(ENVELOPE)
    with pytest.raises(PayloadRejected, match="requires signatures"):
        Signer(SECRET).open(unsigned)
    with pytest.raises(PayloadRejected, match="TASKER_SECRET"):
        Signer(None).open(unsigned)
    assert Signer(None, allow_unsigned=True).open(unsigned) == ENVELOPE


def test_signed_frame_without_a_secret_says_so() -> None:
    with pytest.raises(PayloadRejected, match="no secret"):
        Signer(None, allow_unsigned=True).open(Signer(SECRET).seal(ENVELOPE))


@pytest.mark.parametrize(
    ("frame", "reason"),
    [(b"", "empty"), (b"\x07junk", "not a tasker-dist payload"), (b"\x01short", "did not verify")],
)
def test_garbage_frames_are_refused_with_a_reason(frame: bytes, reason: str) -> None:
    with pytest.raises(PayloadRejected, match=reason):
        Signer(SECRET).open(frame)


def test_no_secret_refuses_to_seal() -> None:
    with pytest.raises(ConfigError, match="TASKER_SECRET"):
        Signer(None).seal(ENVELOPE)


def test_secret_from_environment_and_its_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKER_SECRET", "s" * 20)
    assert resolve_secret(None) == b"s" * 20
    assert resolve_secret("given-secret-1234") == b"given-secret-1234"
    monkeypatch.delenv("TASKER_SECRET")
    assert resolve_secret(None) is None
    with pytest.raises(ConfigError, match="16"):
        resolve_secret("short")


def test_producer_without_a_secret_writes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TASKER_SECRET")
    # an unreachable URL: refusing must come first, before any connection is tried
    with Producer("redis://127.0.0.1:1/0") as producer:
        with pytest.raises(ConfigError, match="TASKER_SECRET"):
            producer.enqueue(lambda ctx, r: None)
        with pytest.raises(ConfigError, match="allow_unsigned"):
            producer.enqueue_many(lambda ctx, r: None, [()])

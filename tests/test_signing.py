"""Signed frames (SPEC §7): unit tests of `tasker_dist.wire.signing`, no Redis."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from tasker_dist import Config, ConfigError, PayloadRejected, Producer
from tasker_dist.wire.signing import Signer, resolve_previous, resolve_secret

SECRET = b"k" * 32
ENVELOPE = b"\x98\x01\xa1t\xc4\x02fn"


def test_seal_then_open_returns_the_envelope() -> None:
    signer = Signer(SECRET, queue="q")
    frame = signer.seal(ENVELOPE)
    assert frame != ENVELOPE
    assert frame.endswith(ENVELOPE)
    assert signer.open(frame) == ENVELOPE


@pytest.mark.parametrize("position", [0, 1, 20, 33, -1])
def test_any_altered_byte_is_refused(position: int) -> None:
    frame = bytearray(Signer(SECRET, queue="q").seal(ENVELOPE))
    frame[position] ^= 0x01
    with pytest.raises(PayloadRejected):
        Signer(SECRET, queue="q").open(bytes(frame))


@pytest.mark.parametrize("key_bytes", [16, 32, 63, 64, 65, 200])
@pytest.mark.parametrize("envelope", [b"", b"x", b"\x00\xff" * 1000])
def test_frames_carry_the_standard_hmac_sha256(key_bytes: int, envelope: bytes) -> None:
    # Any HMAC-SHA256 implementation (another language's worker, an auditor) must agree.
    secret = bytes(range(256))[:key_bytes]
    frame = Signer(secret, queue="orders").seal(envelope)
    # the MAC covers the queue's name (its length in two bytes, then UTF-8) and the envelope
    bound = b"\x00\x06orders" + envelope
    assert frame[1:33] == hmac.new(secret, bound, hashlib.sha256).digest()
    assert frame == b"\x01" + frame[1:33] + envelope


def test_a_frame_signed_for_one_queue_does_not_verify_on_another() -> None:
    frame = Signer(SECRET, queue="orders").seal(ENVELOPE)
    assert Signer(SECRET, queue="orders").open(frame) == ENVELOPE
    with pytest.raises(PayloadRejected, match="another queue than 'payments'"):
        Signer(SECRET, queue="payments").open(frame)
    # neither does one of the old secret during a rotation
    rotating = Signer(b"new-secret-0123456789", previous=(SECRET,), queue="payments")
    with pytest.raises(PayloadRejected):
        rotating.open(frame)


def test_a_different_secret_does_not_verify() -> None:
    frame = Signer(b"x" * 32, queue="q").seal(ENVELOPE)
    with pytest.raises(PayloadRejected, match="signature did not verify"):
        Signer(SECRET, queue="q").open(frame)


def test_unsigned_frames_are_refused_unless_allowed() -> None:
    unsigned = Signer(None, allow_unsigned=True, queue="q").seal(ENVELOPE)
    with pytest.raises(PayloadRejected, match="requires signatures"):
        Signer(SECRET, queue="q").open(unsigned)
    with pytest.raises(PayloadRejected, match="TASKER_SECRET"):
        Signer(None, queue="q").open(unsigned)
    assert Signer(None, allow_unsigned=True, queue="q").open(unsigned) == ENVELOPE


def test_signed_frame_without_a_secret_says_so() -> None:
    with pytest.raises(PayloadRejected, match="no secret"):
        Signer(None, allow_unsigned=True, queue="q").open(Signer(SECRET, queue="q").seal(ENVELOPE))


@pytest.mark.parametrize(
    ("frame", "reason"),
    [(b"", "empty"), (b"\x07junk", "not a tasker-dist payload"), (b"\x01short", "did not verify")],
)
def test_garbage_frames_are_refused_with_a_reason(frame: bytes, reason: str) -> None:
    with pytest.raises(PayloadRejected, match=reason):
        Signer(SECRET, queue="q").open(frame)


def test_no_secret_refuses_to_seal() -> None:
    with pytest.raises(ConfigError, match="TASKER_SECRET"):
        Signer(None, queue="q").seal(ENVELOPE)


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


# -- keys never shown, and rotation ---------------------------------------------------------

OLD = b"old-secret-0123456789"
NEW = b"new-secret-9876543210"


def test_no_repr_shows_a_key() -> None:
    config = Config(on_create=dict, secret=OLD.decode(), previous_secrets=(NEW.decode(),))
    signer = Signer(NEW, previous=(OLD,), queue="q")
    for text in (repr(config), str(config), repr(signer), str(signer)):
        assert "old-secret" not in text
        assert "new-secret" not in text
    assert "previous" in repr(signer)  # but it says that there are some


def test_previous_secrets_verify_and_the_current_one_signs() -> None:
    old_only = Signer(OLD, queue="q")
    rotating = Signer(NEW, previous=(OLD,), queue="q")
    assert rotating.open(old_only.seal(ENVELOPE)) == ENVELOPE  # a frame of the old key
    frame = rotating.seal(ENVELOPE)
    assert frame[1:33] == hmac.new(NEW, b"\x00\x01q" + ENVELOPE, hashlib.sha256).digest()
    with pytest.raises(PayloadRejected, match="signature did not verify"):
        old_only.open(frame)  # a side without the new key refuses what it signs
    assert Signer(OLD, previous=(NEW,), queue="q").open(frame) == ENVELOPE
    with pytest.raises(PayloadRejected, match="signature did not verify"):
        rotating.open(Signer(b"another-secret-000000", queue="q").seal(ENVELOPE))


def test_previous_secrets_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKER_SECRET_PREVIOUS", f"{OLD.decode()},{NEW.decode()}")
    assert resolve_previous(None) == (OLD, NEW)
    assert resolve_previous(()) == ()  # given explicitly: the environment is not read
    monkeypatch.setenv("TASKER_SECRET_PREVIOUS", "short")
    with pytest.raises(ConfigError, match="previous secret must be at least 16 bytes"):
        resolve_previous(None)


def test_previous_secrets_without_a_secret_to_sign_with_are_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TASKER_SECRET")
    with pytest.raises(ConfigError, match="no secret to sign with"):
        Signer.from_settings(None, False, [OLD], queue="q")
    with pytest.raises(ConfigError, match="a sequence of secrets"):
        resolve_previous(OLD)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="previous_secrets"):
        Config(on_create=dict, previous_secrets=("short",))

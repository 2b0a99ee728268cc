"""The wire layer: what travels through Redis, and nothing that talks to it.

Task and result envelopes, the value codec, signed frames, shipping callables, task ids
and size limits. Imports only the core modules (``tasker_dist.errors`` and friends).
"""

from . import codec
from .callables import CallableCache, dumps_callable
from .envelope import (
    FLAG_ONCE,
    FailedRecord,
    Failure,
    Outcome,
    TaskEnvelope,
    decode_result,
    decode_task,
    encode_failure,
    encode_success,
    encode_task,
    peek_task_id,
)
from .limits import DEFAULT_MAX_PAYLOAD_BYTES, check_size
from .signing import SECRET_ENV, Signer, resolve_secret, unverified_contents
from .task_ids import new_task_id, queued_at

__all__ = [
    "DEFAULT_MAX_PAYLOAD_BYTES",
    "FLAG_ONCE",
    "SECRET_ENV",
    "CallableCache",
    "FailedRecord",
    "Failure",
    "Outcome",
    "Signer",
    "TaskEnvelope",
    "check_size",
    "codec",
    "decode_result",
    "decode_task",
    "dumps_callable",
    "encode_failure",
    "encode_success",
    "encode_task",
    "new_task_id",
    "peek_task_id",
    "queued_at",
    "resolve_secret",
    "unverified_contents",
]

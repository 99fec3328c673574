"""Writes on the message queue: ingest, the one transition function, claim, apply, retry, discard, bulk, purge.

Split by concern; the engine's entry points are re-exported here (``from messages.services import
message_retry``):

- ``transitions``: ``message_transition`` (compare-and-set + event rows)
- ``ingest``: ``message_ingest_batch``
- ``wakeup``: waking the workers (drain tasks enqueued by their dotted path), the minute's sweep
- ``claim``: ``message_claim`` (leases, attempts counted at claim)
- ``processing``: ``message_process_batch``, and for a drain ``message_process_claimed`` (an error
  the batch does not handle: ``message_release``)
- ``failures``: backoff and dead letters
- ``operator``: ``message_retry``, ``message_discard``, ``message_restore``

What the console and the schedules call lives beside them, imported by module (not re-exported
here): ``console`` (operator actions with their audit rows), ``bulk`` (background bulk jobs),
``retention`` (the purge), ``sampling`` (the once-a-minute metric sample).
"""

from messages.models import DISCARDABLE_STATES, RETRYABLE_STATES
from messages.services.claim import CLAIM_FIELDS, message_claim
from messages.services.failures import backoff_seconds, failure_group_key
from messages.services.ingest import Envelope, SubmitResult, message_ingest_batch
from messages.services.operator import message_discard, message_restore, message_retry
from messages.services.processing import (
    BatchResult,
    engine_session,
    message_process_batch,
    message_process_claimed,
    message_release,
)
from messages.services.transitions import NOOP_REASON, IllegalTransition, message_transition
from messages.services.wakeup import wake_workers

__all__ = [
    "CLAIM_FIELDS",
    "DISCARDABLE_STATES",
    "NOOP_REASON",
    "RETRYABLE_STATES",
    "BatchResult",
    "Envelope",
    "IllegalTransition",
    "SubmitResult",
    "backoff_seconds",
    "engine_session",
    "failure_group_key",
    "message_claim",
    "message_discard",
    "message_ingest_batch",
    "message_process_batch",
    "message_process_claimed",
    "message_release",
    "message_restore",
    "message_retry",
    "message_transition",
    "wake_workers",
]

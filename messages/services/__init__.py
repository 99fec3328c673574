"""Writes on the message queue: ingest, the one transition function, claim, apply, retry, discard, bulk, purge.

Split by concern; import from here (``from messages.services import message_retry``):

- ``transitions``: ``message_transition`` (compare-and-set + event rows), ``db_now``
- ``ingest``: ``message_ingest_batch`` and the wake-up of the workers
- ``processing``: ``message_claim`` (leases, attempts counted at claim), ``message_process_batch``, and for a
  drain ``message_process_claimed`` (an error the batch does not handle: ``message_release``)
- ``operator``: ``message_retry``, ``message_discard``, ``message_restore``

What the console and the schedules call lives beside them, imported by module (not re-exported
here): ``console`` (operator actions with their audit rows), ``bulk`` (background bulk jobs),
``retention`` (the purge).
"""

from messages.services.ingest import Envelope, SubmitResult, message_ingest_batch, wake_workers
from messages.services.operator import message_discard, message_restore, message_retry
from messages.services.processing import (
    CLAIM_FIELDS,
    BatchResult,
    backoff_seconds,
    engine_session,
    failure_group_key,
    message_claim,
    message_process_batch,
    message_process_claimed,
    message_release,
)
from messages.services.transitions import (
    DISCARDABLE_STATES,
    NOOP_REASON,
    RETRYABLE_STATES,
    IllegalTransition,
    db_now,
    message_transition,
)

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
    "db_now",
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

"""A message that fails: due again after a backoff, or dead-lettered; and which errors are the database's.

What a batch (processing.py), its release (processing.message_release) and the claim of an expired
lease (claim.py) do with a message they hold (Processing, under their worker's lease).
"""

from __future__ import annotations

import random
import re
from datetime import timedelta

from django.conf import settings
from django.db import InterfaceError, OperationalError

from messages.models import DeadLetter, Message, MessageState
from messages.services.transitions import message_transition
from messages.services.triage import deadletter_group_recur

S = MessageState

_NORMALISE = re.compile(r"0x[0-9a-fA-F]+|[0-9a-fA-F]{8,}|\d+")


def failure_group_key(error_class: str, reason: str) -> str:
    """error class + message with ids and numbers blanked: one group per kind of failure."""
    return f"{error_class}: {_NORMALISE.sub('#', reason.splitlines()[0] if reason else '')}"[:255]


def backoff_seconds(attempts: int) -> float:
    """Exponential backoff with jitter: base * 2^(n-1), capped, then 50-100% of that."""
    delay = min(settings.SYNC_BACKOFF_MAX_SECONDS, settings.SYNC_BACKOFF_BASE_SECONDS * 2 ** max(attempts - 1, 0))
    return delay * random.uniform(0.5, 1.0)


def message_fail(
    message: Message, *, worker: str, reason: str, error_class: str, traceback: str, delay: float, now, savepoint=True
) -> None:
    """Processing -> Failed for a message this worker still leases: due again after ``delay`` seconds."""
    message_transition(
        message_ids=[message.pk],
        from_state=S.PROCESSING,
        to_state=S.FAILED,
        actor=worker,
        reason=f"{reason} (retry in {delay:.0f}s)" if delay else reason,
        error_class=error_class,
        traceback=traceback,
        fields={
            "lease_owner": "",
            "lease_expires_at": None,
            "last_error": reason,
            "next_attempt_at": now + timedelta(seconds=delay),
        },
        only_if={"lease_owner": worker},
        now=now,
        savepoint=savepoint,
    )


def message_dead_letter(
    message: Message, *, actor: str, reason: str, error_class: str, traceback: str = "", now
) -> None:
    """Dead-letter a message its worker holds (Processing), with its DeadLetter row."""
    message_transition(
        message_ids=[message.pk],
        # Not message.state: a batch that dead-lettered a message and then failed as a whole was
        # rolled back, but left this in-memory copy saying DeadLettered, and the batch's replay then
        # asked for DeadLettered -> DeadLettered (IllegalTransition: the whole batch stuck until its
        # lease ended).
        from_state=S.PROCESSING,
        to_state=S.DEAD_LETTERED,
        actor=actor,
        reason=reason,
        error_class=error_class,
        traceback=traceback,
        fields={"lease_owner": "", "lease_expires_at": None, "next_attempt_at": None, "last_error": reason},
        now=now,
    )
    group_key = failure_group_key(error_class, reason)
    DeadLetter.objects.update_or_create(
        message=message,
        defaults={
            "reason": reason,
            "error_class": error_class,
            "traceback": traceback,
            "group_key": group_key,
            "dead_lettered_at": now,
            "resolution": "",
            "resolved_by": "",
            "resolved_at": None,
            "note": "",
        },
    )
    # A group support had closed (fixed, or gone) comes back as new, in this transaction.
    deadletter_group_recur(message=message, group_key=group_key, actor=actor, now=now)
    message.state = S.DEAD_LETTERED


def error_text(text: str) -> str:
    """Error text as the database can store it: PostgreSQL refuses NUL in text columns.

    A handler's error can quote a payload, whose JSON "\\u0000" decodes to NUL: writing that
    failure then failed the batch again (DataError), and every message of it waited for its lease.
    """
    return text.replace("\x00", "\\x00")


def is_infrastructure_error(exc: BaseException) -> bool:
    """Database unreachable or connection lost: not the message's fault. The batch is not replayed
    and no handler error is recorded; the messages are released with backoff (message_release)."""
    return isinstance(exc, OperationalError | InterfaceError) and not is_retryable_conflict(exc)


def is_retryable_conflict(exc: BaseException) -> bool:
    sqlstate = getattr(getattr(exc, "__cause__", None), "sqlstate", None)
    return sqlstate in ("40P01", "40001")  # deadlock detected, serialization failure

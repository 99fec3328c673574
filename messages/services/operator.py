"""Operator actions: retry and discard, on one message or a whole selection."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable

from django.db import transaction

from messages.models import DISCARDABLE_STATES, RESTORABLE_STATES, RETRYABLE_STATES, DeadLetter, Message, MessageState
from messages.services.transitions import message_transition
from messages.services.wakeup import wake_workers
from syncadmin.lib.clock import db_now
from syncadmin.lib.sql import chunks

S = MessageState

log = logging.getLogger("messages.services")


def _move_selection(
    *,
    message_ids: Iterable[int],
    from_states: Iterable[str],
    to_state: str,
    actor: str,
    reason: str,
    fields,
    resolution: str = "",
) -> int:
    """Move whichever of ``message_ids`` are in ``from_states`` to ``to_state``; return how many.

    Messages in any other state are left alone (a double-clicked action changes nothing the
    second time). Each chunk is its own transaction so a large selection never holds long locks.
    ``fields(now)`` gives the extra column updates; ``resolution`` closes open dead letters.
    """
    changed = 0
    for chunk in chunks(message_ids):
        with transaction.atomic():
            rows = list(
                Message.objects.select_for_update()
                .filter(pk__in=chunk, state__in=list(from_states))
                .order_by("pk")
                .values_list("pk", "state")
            )
            # The clock is read once the row locks are held: a worker whose transaction we
            # waited for committed earlier, so its event must not look later than ours.
            now = db_now()
            by_state = defaultdict(list)
            for pk, state in rows:
                by_state[state].append(pk)
            for state, ids in by_state.items():
                changed += message_transition(
                    message_ids=ids,
                    from_state=state,
                    to_state=to_state,
                    actor=actor,
                    reason=reason,
                    fields=fields(now),
                    now=now,
                )
            if resolution and rows:
                DeadLetter.objects.filter(message_id__in=[pk for pk, _ in rows], resolution="").update(
                    resolution=resolution, resolved_by=actor[:150], resolved_at=now, note=reason
                )
            if to_state == S.RECEIVED and rows:
                transaction.on_commit(wake_workers)
    return changed


def _due_again(now):
    return {"attempts": 0, "next_attempt_at": now, "lease_owner": "", "lease_expires_at": None}


def message_retry(*, message_ids: Iterable[int], actor: str, reason: str = "") -> int:
    """Failed/DeadLettered -> Received with attempts reset; returns how many changed."""
    return _move_selection(
        message_ids=message_ids,
        from_states=RETRYABLE_STATES,
        to_state=S.RECEIVED,
        actor=actor,
        reason=reason or "retry requested",
        fields=_due_again,
        resolution=DeadLetter.Resolution.RETRIED,
    )


def message_discard(*, message_ids: Iterable[int], actor: str, reason: str) -> int:
    """Received/Failed/DeadLettered -> Discarded; a reason is required."""
    if not reason or not reason.strip():
        raise ValueError("a reason is required to discard messages")
    return _move_selection(
        message_ids=message_ids,
        from_states=DISCARDABLE_STATES,
        to_state=S.DISCARDED,
        actor=actor,
        reason=reason,
        fields=lambda now: {"next_attempt_at": None, "lease_owner": "", "lease_expires_at": None},
        resolution=DeadLetter.Resolution.DISCARDED,
    )


def message_restore(*, message_ids: Iterable[int], actor: str, reason: str = "") -> int:
    """Discarded -> Received, due now with attempts reset; returns how many changed."""
    return _move_selection(
        message_ids=message_ids,
        from_states=RESTORABLE_STATES,
        to_state=S.RECEIVED,
        actor=actor,
        reason=reason or "restored",
        fields=_due_again,
    )

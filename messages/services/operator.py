"""Operator actions: retry and discard, on one message or a whole selection."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable

from django.db import transaction

from messages.models import DeadLetter, Message
from messages.services.ingest import wake_workers
from messages.services.transitions import DISCARDABLE_STATES, RETRYABLE_STATES, S, _chunks, db_now, message_transition

log = logging.getLogger("messages.services")


def message_retry(*, message_ids: Iterable[int], actor: str, reason: str = "") -> int:
    """Failed/DeadLettered -> Received with attempts reset; returns how many changed.

    Messages in any other state are left alone (a double-clicked retry changes nothing the
    second time). Each chunk is its own transaction so a large selection never holds long locks.
    """
    changed = 0
    for chunk in _chunks(message_ids):
        with transaction.atomic():
            rows = list(
                Message.objects.select_for_update()
                .filter(pk__in=chunk, state__in=RETRYABLE_STATES)
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
                    to_state=S.RECEIVED,
                    actor=actor,
                    reason=reason or "retry requested",
                    fields={"attempts": 0, "next_attempt_at": now, "lease_owner": "", "lease_expires_at": None},
                    now=now,
                )
            DeadLetter.objects.filter(message_id__in=[pk for pk, _ in rows], resolution="").update(
                resolution=DeadLetter.Resolution.RETRIED, resolved_by=actor[:150], resolved_at=now, note=reason
            )
            if rows:
                transaction.on_commit(wake_workers)
    return changed


def message_discard(*, message_ids: Iterable[int], actor: str, reason: str) -> int:
    """Received/Failed/DeadLettered -> Discarded; a reason is required."""
    if not reason or not reason.strip():
        raise ValueError("a reason is required to discard messages")
    changed = 0
    for chunk in _chunks(message_ids):
        with transaction.atomic():
            rows = list(
                Message.objects.select_for_update()
                .filter(pk__in=chunk, state__in=DISCARDABLE_STATES)
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
                    to_state=S.DISCARDED,
                    actor=actor,
                    reason=reason,
                    fields={"next_attempt_at": None, "lease_owner": "", "lease_expires_at": None},
                    now=now,
                )
            DeadLetter.objects.filter(message_id__in=[pk for pk, _ in rows], resolution="").update(
                resolution=DeadLetter.Resolution.DISCARDED, resolved_by=actor[:150], resolved_at=now, note=reason
            )
    return changed

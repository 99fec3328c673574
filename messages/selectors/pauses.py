"""Reads of the pauses (services/pauses.py): what is paused, by whom, since when, why, and what waits."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from messages.models import PARK_OFFSET, PENDING_STATES, Message, QueuePause
from messages.selectors.queue import message_count_capped

WAITING_CAP = 10_000  # the dashboard counts a pause's waiting messages up to this, then says "more than"


@dataclass
class PauseRow:
    pause: QueuePause
    waiting: int  # Received + Failed messages the pause holds (up to WAITING_CAP)
    more: bool  # more than WAITING_CAP
    query: str  # the message list's filter for them


FILTERS = {
    QueuePause.Scope.MESSAGE_TYPE: ("message_type", "message_type"),
    QueuePause.Scope.ENTITY_TYPE: ("entity_type", "entity_type"),
    QueuePause.Scope.TERMINAL: ("terminal__code", "terminal"),
}


def queue_pauses() -> list[PauseRow]:
    """The active pauses, oldest first, each with how many messages it holds back."""
    rows = []
    for pause in QueuePause.objects.order_by("paused_at", "pk"):
        lookup, param = FILTERS[pause.scope]
        waiting = Message.objects.filter(state__in=PENDING_STATES, **{lookup: pause.value})
        n, more = message_count_capped(queryset=waiting, cap=WAITING_CAP)
        rows.append(PauseRow(pause=pause, waiting=n, more=more, query=f"state=Received&{param}={pause.value}"))
    return rows


def queue_pause_counts() -> dict[str, int]:
    """Active pauses per scope, every scope present (the /metrics gauge)."""
    counts = dict.fromkeys(QueuePause.Scope.values, 0)
    for scope in QueuePause.objects.values_list("scope", flat=True):
        counts[scope] += 1
    return counts


def message_due(*, next_attempt_at: datetime | None) -> tuple[datetime | None, bool]:
    """(when the message is or was due, whether a pause has it parked).

    A parked message's stored due time is PARK_OFFSET later than its own (services/pauses.py); the
    console and the API show the message's own, to the microsecond, and say that it is parked.
    """
    if next_attempt_at is not None and next_attempt_at > timezone.now() + PARK_OFFSET / 2:
        return next_attempt_at - PARK_OFFSET, True
    return next_attempt_at, False

"""Reads on the message queue."""

from __future__ import annotations

from django.db.models import Count, Min, Q

from messages.models import PENDING_STATES, Message, MessageEvent, MessageState
from messages.services import db_now


def message_due_count(*, limit: int) -> int:
    """How many messages are due (pending and due, or with an expired lease), up to ``limit``."""
    now = db_now()
    due = Message.objects.filter(state__in=PENDING_STATES, next_attempt_at__lte=now).values("pk")[:limit]
    expired = Message.objects.filter(state=MessageState.PROCESSING, lease_expires_at__lt=now).values("pk")[:limit]
    return len(due) + len(expired)


def message_state_counts() -> dict[str, int]:
    counts = dict(Message.objects.values_list("state").annotate(n=Count("pk")).order_by())
    return {state: counts.get(state, 0) for state in MessageState.values}


def message_backlog() -> dict:
    """Backlog = Received + Failed, and the received time of its oldest message."""
    agg = Message.objects.filter(state__in=PENDING_STATES).aggregate(n=Count("pk"), oldest=Min("received_at"))
    return {"count": agg["n"], "oldest_received_at": agg["oldest"]}


def message_lifecycle(*, message_id: int) -> list[MessageEvent]:
    return list(MessageEvent.objects.filter(message_id=message_id).order_by("at", "pk"))


def message_entity_history(*, message: Message, limit: int = 50) -> list[Message]:
    return list(
        Message.objects.filter(
            Q(terminal_id=message.terminal_id), entity_type=message.entity_type, entity_key=message.entity_key
        )
        .exclude(pk=message.pk)
        .order_by("-sequence")[:limit]
    )


def message_statuses(*, terminal, message_ids: list[str]) -> dict[str, Message]:
    """The terminal's own messages among ``message_ids``, by message id (one query).

    Scoped to the terminal: another terminal's id is simply not found.
    """
    ids = list(dict.fromkeys(m for m in message_ids if m))
    if not ids:
        return {}
    rows = Message.objects.filter(terminal=terminal, message_id__in=ids).only(
        "message_id", "state", "attempts", "last_error", "updated_at"
    )
    return {m.message_id: m for m in rows}

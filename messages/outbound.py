"""Writes and reads on outbound updates: what the hub pushes back to a terminal.

Pending -> Delivered (handed out by FetchUpdates) -> Acknowledged (AckUpdates). An update
that was delivered but never acknowledged is handed out again on the next fetch, so a lost
reply cannot lose an update; acknowledging twice is harmless.
"""

from __future__ import annotations

import uuid

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from messages.models import OutboundUpdate, UpdateState


def update_create(
    *, terminal, update_type: str, entity_key: str = "", payload: str = "", created_by: str = ""
) -> OutboundUpdate:
    return OutboundUpdate.objects.create(
        terminal=terminal,
        update_id=uuid.uuid4().hex,
        update_type=update_type,
        entity_key=entity_key,
        payload=payload,
        state=UpdateState.PENDING,
        created_at=timezone.now(),
        created_by=created_by,
    )


def update_fetch(*, terminal, max_count: int) -> list[OutboundUpdate]:
    """The terminal's unacknowledged updates, oldest first; marks the pending ones Delivered."""
    with transaction.atomic():
        updates = list(
            OutboundUpdate.objects.filter(terminal=terminal)
            .filter(Q(state=UpdateState.PENDING) | Q(state=UpdateState.DELIVERED))
            .order_by("created_at", "pk")[:max_count]
        )
        pending = [u.pk for u in updates if u.state == UpdateState.PENDING]
        if pending:
            now = timezone.now()
            OutboundUpdate.objects.filter(pk__in=pending, state=UpdateState.PENDING).update(
                state=UpdateState.DELIVERED, delivered_at=now
            )
    return updates


def update_ack(*, terminal, update_ids: list[str]) -> int:
    """Acknowledge the terminal's own updates; returns how many were newly acknowledged."""
    return OutboundUpdate.objects.filter(
        terminal=terminal, update_id__in=update_ids, state__in=[UpdateState.PENDING, UpdateState.DELIVERED]
    ).update(state=UpdateState.ACKNOWLEDGED, acknowledged_at=timezone.now())


def update_pending_count(*, terminal) -> int:
    return OutboundUpdate.objects.filter(
        terminal=terminal, state__in=[UpdateState.PENDING, UpdateState.DELIVERED]
    ).count()

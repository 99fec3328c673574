"""Cheap reads for /metrics, /healthz and the sample task (each one an index probe or a small scan)."""

from __future__ import annotations

import logging
from datetime import datetime

from django.db.models import Count

from messages.models import PENDING_STATES, DeadLetter, Message
from syncadmin.models import MetricSample

log = logging.getLogger(__name__)


def backlog_ages() -> dict[str, datetime | None]:
    """The oldest waiting message's receipt time and the earliest due time of the backlog.

    One LIMIT 1 probe per pending state on (state, received_at), and one on the partial
    index of due work: constant time whatever the table or backlog size.
    """
    oldest = [
        Message.objects.filter(state=state).order_by("received_at").values_list("received_at", flat=True).first()
        for state in PENDING_STATES
    ]
    oldest = [t for t in oldest if t is not None]
    due = (
        Message.objects.filter(state__in=PENDING_STATES, next_attempt_at__isnull=False)
        .order_by("next_attempt_at")
        .values_list("next_attempt_at", flat=True)
        .first()
    )
    return {"oldest_received_at": min(oldest) if oldest else None, "oldest_due_at": due}


def dead_letters_open_by_reason() -> list[tuple[str, int]]:
    """Unresolved dead letters grouped by error class (the open ones only: a small set)."""
    from syncadmin.observability.engine import reason_label

    counts: dict[str, int] = {}
    for error_class, n in (
        DeadLetter.objects.filter(resolution="").values_list("error_class").annotate(n=Count("pk")).order_by()
    ):
        label = reason_label(error_class)
        counts[label] = counts.get(label, 0) + n
    return sorted(counts.items())


def reconciliation_discrepancies_open() -> int | None:
    """Open discrepancies from the reconciliation app, or None when it does not provide them."""
    try:
        from reconciliation.selectors import discrepancy_open_count
    except (ImportError, AttributeError):
        return None
    try:
        return int(discrepancy_open_count())
    except Exception:  # a broken optional source must not take /metrics down with it
        log.warning("reconciliation.selectors.discrepancy_open_count failed", exc_info=True)
        return None


def last_sample_at() -> datetime | None:
    return MetricSample.objects.order_by("-at").values_list("at", flat=True).first()

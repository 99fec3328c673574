"""A terminal's own counts of its entities (ReportCounts), stored for reconciliation runs to compare.

The SOAP API (terminals/soap/) passes CountReport objects; tests and scripts may pass
(entity type, count, as-of) tuples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.utils import timezone

from reconciliation.models import ReportedCount


@dataclass
class CountReport:
    entity_type: str | None
    count: int | None
    as_of: datetime | None


class InvalidCountReport(ValueError):
    """A reported count that cannot be stored; nothing of its report is stored."""


def reported_counts_store(*, terminal, counts: Sequence[CountReport | tuple[str, int, datetime]]) -> int:
    """Store a terminal's per-entity counts (ReportCounts) in one insert; returns how many.

    An ``AsOf`` later than the hub's clock plus SYNC_MAX_CLOCK_SKEW_SECONDS is refused: the
    latest report of a cell is the one with the latest ``AsOf``, so a count dated in the future
    (a till's clock set to 2099, a 9999-12-31 placeholder) would hide every later report.
    """
    latest_allowed = timezone.now() + timedelta(seconds=settings.SYNC_MAX_CLOCK_SKEW_SECONDS)
    rows = []
    for i, c in enumerate(counts):
        if not isinstance(c, CountReport):
            c = CountReport(*c)
        if not c.entity_type or len(c.entity_type) > 40:
            raise InvalidCountReport(f"count {i}: EntityType must be 1..40 characters")
        if c.count is None or c.count < 0:
            raise InvalidCountReport(f"count {i}: Count must be a non-negative number")
        if c.as_of is None:
            raise InvalidCountReport(f"count {i}: AsOf is missing")
        as_of = c.as_of if timezone.is_aware(c.as_of) else timezone.make_aware(c.as_of, UTC)
        if as_of > latest_allowed:
            raise InvalidCountReport(
                f"count {i}: AsOf {as_of.isoformat()} is in the future: more than "
                f"{settings.SYNC_MAX_CLOCK_SKEW_SECONDS} s ahead of the hub's clock ({_utc_text(timezone.now())})"
            )
        rows.append(ReportedCount(terminal=terminal, entity_type=c.entity_type, count=c.count, as_of=as_of))
    ReportedCount.objects.bulk_create(rows, batch_size=500)
    return len(rows)


def _utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

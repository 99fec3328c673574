"""Writes for reconciliation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from reconciliation.models import ReportedCount


@dataclass
class CountReport:
    entity_type: str | None
    count: int | None
    as_of: datetime | None


class InvalidCountReport(ValueError):
    """A reported count that cannot be stored; nothing of its report is stored."""


def reported_counts_store(*, terminal, counts: Sequence[CountReport]) -> int:
    """Store a terminal's per-entity counts (ReportCounts) in one insert; returns how many."""
    rows = []
    for i, c in enumerate(counts):
        if not c.entity_type or len(c.entity_type) > 40:
            raise InvalidCountReport(f"count {i}: EntityType must be 1..40 characters")
        if c.count is None or c.count < 0:
            raise InvalidCountReport(f"count {i}: Count must be a non-negative number")
        if c.as_of is None:
            raise InvalidCountReport(f"count {i}: AsOf is missing")
        rows.append(ReportedCount(terminal=terminal, entity_type=c.entity_type, count=c.count, as_of=c.as_of))
    ReportedCount.objects.bulk_create(rows)
    return len(rows)

"""The once-a-minute sample: folds the counters, writes a MetricSample, prunes old ones.

The row it writes is also the worker cluster's heartbeat (/healthz): it only appears when
the cluster's scheduler and at least one of its workers are alive.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction

from syncadmin.models import MetricSample, TerminalHealthSnapshot
from syncadmin.observability import selectors
from syncadmin.observability.counters import labels_parse, message_state_counts, metric_counters_fold


def metric_sample_write() -> MetricSample:
    """Write the sample for now; returns it. Safe to run twice at once (folding is exact)."""
    from messages.services import db_now

    folded = metric_counters_fold()
    processed = failed = 0.0
    for (name, key), value in folded.items():
        if name != "message_transitions":
            continue
        labels = labels_parse(key)
        if labels.get("to") == "Processed":
            processed += value
        elif labels.get("from") == "Processing" and labels.get("to") in ("Failed", "DeadLettered"):
            failed += value
    states = message_state_counts()
    ages = selectors.backlog_ages()
    now = db_now()
    oldest = ages["oldest_received_at"]
    fields = {
        "backlog": states["Received"] + states["Failed"],
        "oldest_backlog_seconds": None if oldest is None else max((now - oldest).total_seconds(), 0.0),
        "processed_last_minute": int(processed),
        "failed_last_minute": int(failed),
        "dead_lettered_total": states["DeadLettered"],
    }
    try:
        with transaction.atomic():
            sample = MetricSample.objects.create(at=now, **fields)
    except IntegrityError:  # another cluster wrote one at the very same instant
        now += timedelta(microseconds=1)
        sample = MetricSample.objects.create(at=now, **fields)
    MetricSample.objects.filter(at__lt=now - timedelta(days=settings.SYNC_METRIC_SAMPLE_RETENTION_DAYS)).delete()
    terminal_health_snapshot_write(now=now)
    return sample


def terminal_health_snapshot_write(*, now=None) -> int:
    """Store every terminal's health score (replacing the previous snapshot); returns how many."""
    from messages.services import db_now
    from terminals.selectors import terminal_health

    now = now or db_now()
    healths = terminal_health(now=now)
    with transaction.atomic():
        TerminalHealthSnapshot.objects.all().delete()
        TerminalHealthSnapshot.objects.bulk_create(
            [
                TerminalHealthSnapshot(terminal_id=pk, level=h.level, reasons=h.reasons, computed_at=now)
                for pk, h in healths.items()
            ],
            batch_size=1000,
        )
    return len(healths)

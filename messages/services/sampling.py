"""The once-a-minute sample: folds the counters, writes a MetricSample, prunes old ones.

The row it writes is also the worker cluster's heartbeat (/healthz): it only appears when
the cluster's scheduler and at least one of its workers are alive. The sample task
(syncadmin/observability/tasks.py) then stores every terminal's health score as of the
sample's time (reconciliation/terminal_health.py).
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction

from messages.metrics import message_state_counts
from messages.selectors import message_backlog_ages
from syncadmin.lib.clock import db_now
from syncadmin.lib.counters import labels_parse, metric_counters_fold
from syncadmin.models import MetricSample


def metric_sample_write() -> MetricSample:
    """Write the sample for now; returns it. Safe to run twice at once (folding is exact)."""
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
    ages = message_backlog_ages()
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
    return sample

"""The /metrics exposition: database-backed series plus this host's SOAP request metrics.

Two sources, chosen by where the numbers are born (README, "Observability"):
- Cluster-wide, from the database at scrape time, cheaply: the counters of MetricCounter
  (message states, transitions, attempts, outcomes, processing/latency histograms, dead
  letters), plus a few indexed reads (oldest backlog, open dead letters, terminals).
- Process-local in the web server: SOAP requests and their durations (terminals/soap/observed.py),
  from syncadmin/lib/process_metrics.py, summed across a host's gunicorn workers when
  PROMETHEUS_MULTIPROC_DIR is set.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime

from prometheus_client import CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from messages.metrics import LATENCY_BUCKETS, PROCESSING_BUCKETS, message_state_counts
from messages.selectors import deadletter_open_by_reason, message_backlog_ages
from messages.selectors.pauses import queue_pause_counts
from reconciliation.alerts.selectors import incidents_open_by_rule
from reconciliation.selectors import discrepancy_open_count
from syncadmin.lib.clock import db_now
from syncadmin.lib.counters import labels_parse, metric_counter_totals
from syncadmin.lib.process_metrics import PROCESS_REGISTRY
from syncadmin.selectors import last_sample_at
from terminals.selectors import HEALTH_LEVELS, terminal_health_snapshot, terminal_status_counts

log = logging.getLogger(__name__)


def _age(now: datetime, then: datetime | None) -> float | None:
    return None if then is None else max((now - then).total_seconds(), 0.0)


def _histogram(name: str, doc: str, totals: dict, buckets, label: str) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=[label])
    per_bucket: dict[str, dict[str, float]] = {}
    for key, value in totals.get(f"{_series(name)}_bucket", {}).items():
        labels = labels_parse(key)
        per_bucket.setdefault(labels.get(label, ""), {})[labels.get("le", "+Inf")] = value
    sums = {labels_parse(k).get(label, ""): v for k, v in totals.get(f"{_series(name)}_sum", {}).items()}
    counts = {labels_parse(k).get(label, ""): v for k, v in totals.get(f"{_series(name)}_count", {}).items()}
    for value_label in sorted(counts):
        stored = {float(le): n for le, n in per_bucket.get(value_label, {}).items()}
        cumulative, rows = 0.0, []
        for b in buckets:
            cumulative += stored.get(b, 0.0)
            rows.append((repr(b), cumulative))
        rows.append(("+Inf", counts[value_label]))
        family.add_metric([value_label], rows, sum_value=sums.get(value_label, 0.0))
    return family


def _series(exported_name: str) -> str:
    return exported_name.removeprefix("syncadmin_")


def _counter(name: str, doc: str, totals: dict, series: str, labels: dict[str, str]) -> CounterMetricFamily:
    """``labels`` maps exported label name -> stored label name."""
    family = CounterMetricFamily(name, doc, labels=list(labels))
    for key, value in sorted(totals.get(series, {}).items()):
        stored = labels_parse(key)
        family.add_metric([stored.get(v, "") for v in labels.values()], value)
    return family


class DatabaseCollector:
    """Reads the cluster-wide series at scrape time: a fixed, small number of indexed queries."""

    def collect(self):
        now = db_now()
        totals = metric_counter_totals()
        states = message_state_counts(totals)

        g = GaugeMetricFamily("syncadmin_messages", "Messages in each state.", labels=["state"])
        for state, n in states.items():
            g.add_metric([state], n)
        yield g
        yield _counter(
            "syncadmin_message_transitions",
            "State changes of messages (from_state=new: received).",
            totals,
            "message_transitions",
            {"from_state": "from", "to_state": "to"},
        )
        yield GaugeMetricFamily(
            "syncadmin_backlog_messages", "Messages waiting to be applied (Received + Failed).",
            value=states["Received"] + states["Failed"],
        )  # fmt: skip
        ages = message_backlog_ages()
        oldest = _age(now, ages["oldest_received_at"])
        yield GaugeMetricFamily(
            "syncadmin_backlog_oldest_age_seconds",
            "Age of the oldest message waiting to be applied (0 when none).",
            value=oldest or 0.0,
        )
        overdue = _age(now, ages["oldest_due_at"])
        yield GaugeMetricFamily(
            "syncadmin_backlog_overdue_seconds",
            "How long the most overdue due message has waited for a worker (0 when none).",
            value=overdue or 0.0,
        )
        yield _histogram(
            "syncadmin_message_processing_seconds",
            "Apply time per message (its share of its batch's time), by message type.",
            totals,
            PROCESSING_BUCKETS,
            "message_type",
        )
        yield _histogram(
            "syncadmin_message_latency_seconds",
            "Time from receipt to applied, by message type.",
            totals,
            LATENCY_BUCKETS,
            "message_type",
        )
        yield _counter(
            "syncadmin_message_attempts",
            "Processing attempts, by message type.",
            totals,
            "message_attempts",
            {"message_type": "message_type"},
        )
        yield _counter(
            "syncadmin_message_outcomes",
            "Results of processing attempts (processed, noop, failed, dead_lettered), by message type.",
            totals,
            "message_outcomes",
            {"message_type": "message_type", "outcome": "outcome"},
        )
        yield _counter(
            "syncadmin_dead_letters",
            "Messages dead-lettered, by reason (error class).",
            totals,
            "dead_letters",
            {"reason": "reason"},
        )
        g = GaugeMetricFamily("syncadmin_dead_letters_open", "Unresolved dead letters, by reason.", labels=["reason"])
        for reason, n in deadletter_open_by_reason():
            g.add_metric([reason], n)
        yield g
        g = GaugeMetricFamily(
            "syncadmin_queue_pauses", "Active pauses of processing, by scope (message_type, entity_type, terminal).",
            labels=["scope"],
        )  # fmt: skip
        for scope, n in queue_pause_counts().items():
            g.add_metric([scope], n)
        yield g
        yield from self._terminals(now)
        discrepancies = _discrepancies_open()
        if discrepancies is not None:
            yield GaugeMetricFamily(
                "syncadmin_reconciliation_discrepancies_open", "Open reconciliation discrepancies.", value=discrepancies
            )
        g = GaugeMetricFamily("syncadmin_alert_incidents_open", "Open alert incidents, by rule.", labels=["rule"])
        for rule, n in incidents_open_by_rule().items():
            g.add_metric([rule], n)
        yield g
        sample_at = last_sample_at()
        yield GaugeMetricFamily(
            "syncadmin_worker_heartbeat_age_seconds",
            "Age of the last once-a-minute sample written by the worker cluster (-1: never).",
            value=-1.0 if sample_at is None else _age(now, sample_at),
        )

    def _terminals(self, now):
        g = GaugeMetricFamily("syncadmin_terminals", "Terminals online, offline and disabled.", labels=["status"])
        for status, n in terminal_status_counts(now=now).items():
            g.add_metric([status], n)
        yield g
        # The score as of the last once-a-minute sample: computing it per scrape would scan the
        # messages of the error window, which grows with throughput.
        by_level = GaugeMetricFamily(
            "syncadmin_terminals_health", "Terminals by health score (as of the last sample).", labels=["health"]
        )
        per_terminal = GaugeMetricFamily(
            "syncadmin_terminal_health",
            "Health score of each terminal as of the last sample: 0 healthy, 1 degraded, 2 failing.",
            labels=["terminal"],
        )
        levels = dict.fromkeys(HEALTH_LEVELS, 0)
        for code, level in terminal_health_snapshot():
            levels[level] = levels.get(level, 0) + 1
            per_terminal.add_metric([code], HEALTH_LEVELS.index(level) if level in HEALTH_LEVELS else -1)
        for level, n in levels.items():
            by_level.add_metric([level], n)
        yield by_level
        yield per_terminal


def _discrepancies_open() -> int | None:
    """Open reconciliation discrepancies, or None when reading them failed."""
    try:
        return int(discrepancy_open_count())
    except Exception:  # a failing read of one series must not take /metrics down with it
        log.warning("reconciliation.selectors.discrepancy_open_count failed", exc_info=True)
        return None


def metrics_render() -> bytes:
    """The text exposition for one scrape."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector())
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_Forward(PROCESS_REGISTRY))
    return generate_latest(registry)


class _Forward:
    """Expose another registry's metrics through this one."""

    def __init__(self, registry: CollectorRegistry):
        self.registry = registry

    def collect(self):
        return self.registry.collect()

"""The queue engine's metrics, log lines and spans: what it counts in its own transactions.

The engine (messages/services/) calls these inside the transaction of the change they describe:
what they count commits or rolls back with it (the per-message log lines and spans are written
once it has committed); /metrics and the once-a-minute sample read the counts back
(``message_state_counts``). Costs: one multi-row INSERT into MetricCounter per call, or per
transaction inside ``collected()`` (the claim and the batch use it); the log lines only when
their level is enabled; the spans only when tracing is on.
"""

from __future__ import annotations

import logging
import re
import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

from django.db import transaction
from django.db.models import Count

from messages.handlers import registry
from messages.models import Message, MessageState
from syncadmin.lib import tracing
from syncadmin.lib.counters import (
    labels_key,
    labels_parse,
    metric_counter_totals,
    metric_deltas_add,
)
from syncadmin.models import MetricCounter

log = logging.getLogger("messages.processing")

# Seconds one message takes to apply (its share of its batch's time).
PROCESSING_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Seconds from receipt to applied (queue latency, retries included).
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0, 86400.0)

_REASON = re.compile(r"[^A-Za-z0-9_.]")


def reason_label(error_class: str) -> str:
    """A dead letter's reason label: its error class (bounded: class names, not free text)."""
    return _REASON.sub("_", error_class or "unknown")[:64] or "unknown"


def type_label(message_type: str) -> str:
    """The message type, or 'unhandled' for types no handler resolves (bounds the label set)."""
    return message_type if registry.resolve(message_type) is not None else "unhandled"


def _bucket(value: float, buckets: Sequence[float]) -> str:
    for b in buckets:
        if value <= b:
            return repr(b)
    return "+Inf"


def _transition_labels(from_state: str, to_state: str) -> dict:
    return {"from": from_state or "new", "to": to_state}


def transition_series(*, from_state: str, to_state: str) -> tuple[str, str]:
    """(name, label text) of the transition counter, for a statement that writes its own delta
    rows (the PostgreSQL claim counts its moves in SQL, in the statement that makes them)."""
    return "message_transitions", labels_key(_transition_labels(from_state, to_state))


def transition_recorded(*, from_state: str, to_state: str, count: int, error_class: str = "") -> None:
    """``count`` messages moved from ``from_state`` ('' = just received) to ``to_state``."""
    if not count or from_state == to_state:
        return
    rows = [("message_transitions", _transition_labels(from_state, to_state), count)]
    if to_state == "DeadLettered":
        rows.append(("dead_letters", {"reason": reason_label(error_class)}, count))
    metric_deltas_add(rows)


def batch_finished(
    *, messages: Sequence, outcomes: dict[int, tuple[str, str]], started: float, now: datetime, worker: str
) -> None:
    """A claimed batch was applied: count attempts and outcomes, time it, log and trace each message
    (the lines and spans once the batch has committed).

    ``outcomes`` maps message pk -> (processed | noop | failed | dead_lettered, reason);
    ``started`` is the batch's time.perf_counter() at its start.
    """
    if not messages:
        return
    elapsed = time.perf_counter() - started
    share = elapsed / len(messages)
    counts: dict[tuple[str, str], float] = defaultdict(float)  # (series, labels as tuple) -> value
    entries = []
    for m in messages:
        outcome, reason = outcomes.get(m.pk, ("unknown", ""))
        entries.append((m, outcome, reason))
        t = type_label(m.message_type)
        counts[("message_attempts", (("message_type", t),))] += 1
        counts[("message_outcomes", (("message_type", t), ("outcome", outcome)))] += 1
        counts[
            ("message_processing_seconds_bucket", (("message_type", t), ("le", _bucket(share, PROCESSING_BUCKETS))))
        ] += 1
        counts[("message_processing_seconds_sum", (("message_type", t),))] += share
        counts[("message_processing_seconds_count", (("message_type", t),))] += 1
        if outcome in ("processed", "noop"):
            latency = max((now - m.received_at).total_seconds(), 0.0)
            counts[
                ("message_latency_seconds_bucket", (("message_type", t), ("le", _bucket(latency, LATENCY_BUCKETS))))
            ] += 1
            counts[("message_latency_seconds_sum", (("message_type", t),))] += latency
            counts[("message_latency_seconds_count", (("message_type", t),))] += 1
    metric_deltas_add([(name, dict(labels), value) for (name, labels), value in counts.items()])
    end_ns = time.time_ns()

    def emit() -> None:
        _log_outcomes(entries, worker)
        if tracing.enabled():
            tracing.message_spans(entries=entries, start_ns=end_ns - int(elapsed * 1e9), end_ns=end_ns, worker=worker)

    # The lines and spans tell what happened to each message: written once the batch's transaction
    # has committed, never for a batch that rolled back (its messages are applied again), and not
    # while the transaction still holds the batch's central rows (at 22 µs a line, a batch of 100
    # kept them locked 2 ms longer for its log lines alone).
    transaction.on_commit(emit)


_LEVELS = {"processed": logging.INFO, "noop": logging.INFO, "failed": logging.WARNING, "dead_lettered": logging.WARNING}
_TEXT = {
    "processed": "message processed",
    "noop": "message processed (no-op)",
    "failed": "message failed; will retry",
    "dead_lettered": "message dead-lettered",
}


def _log_outcomes(entries, worker: str) -> None:
    for m, outcome, reason in entries:
        level = _LEVELS.get(outcome, logging.WARNING)
        if not log.isEnabledFor(level):
            continue
        log.log(
            level,
            _TEXT.get(outcome, f"message {outcome}"),
            extra={
                "trace_id": m.trace_id,
                "terminal": m.terminal.code,
                "message_id": m.message_id,
                "message_pk": m.pk,
                "message_type": m.message_type,
                "attempt": m.attempts,
                "outcome": outcome,
                "reason": reason,
                "worker": worker,
            },
        )


# --- messages per state, from the counters -----------------------------------------------------


def message_state_counts(totals: dict[str, dict[str, float]] | None = None) -> dict[str, int]:
    """Messages per state from the counters: seed + transitions in - transitions out."""
    totals = metric_counter_totals() if totals is None else totals
    counts = {state: 0.0 for state in MessageState.values}
    for key, value in totals.get("message_state_seed", {}).items():
        state = labels_parse(key).get("state")
        if state in counts:
            counts[state] += value
    for key, value in totals.get("message_transitions", {}).items():
        labels = labels_parse(key)
        if labels.get("to") in counts:
            counts[labels["to"]] += value
        if labels.get("from") in counts:
            counts[labels["from"]] -= value
    return {state: int(round(n)) for state, n in counts.items()}


def message_state_recount() -> dict[str, int]:
    """Recount messages per state from the message table and reset the counters to it.

    A full scan: for a maintenance window (after a bulk delete or a restore), with the
    workers stopped, via ``manage.py metrics_recount``. Other series are left alone.
    """
    with transaction.atomic():
        MetricCounter.objects.filter(name__in=["message_state_seed", "message_transitions"]).delete()
        rows = list(Message.objects.values_list("state").annotate(n=Count("pk")).order_by())
        MetricCounter.objects.bulk_create(
            [
                MetricCounter(name="message_state_seed", labels=labels_key({"state": s}), value=n, base=True)
                for s, n in rows
            ]
        )
    return dict(rows)

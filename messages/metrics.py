"""The queue engine's metrics, log lines and spans: what it counts in its own transactions.

The engine (messages/services/) calls these inside the transaction of the change they describe:
what they count commits or rolls back with it (a batch's log records and its span are written
once it has committed); /metrics and the once-a-minute sample read the counts back
(``message_state_counts``). Costs: one multi-row INSERT into MetricCounter per call, or per
transaction inside ``collected()`` (the claim and the batch use it); per batch, not per message,
one log record per outcome that went well (built only when its level is enabled) and one span
(only when tracing is on); a record per message only for one that failed.
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
    """A claimed batch was applied: count attempts and outcomes, time it, log it and trace it (the
    log records and the span once the batch has committed).

    ``outcomes`` maps message pk -> (processed | noop | failed | dead_lettered, reason);
    ``started`` is the batch's time.perf_counter() at its start. Metric deltas are folded per
    (message type, outcome) in memory: a batch of one type adds each series once, whatever its size.
    """
    if not messages:
        return
    elapsed = time.perf_counter() - started
    share = elapsed / len(messages)
    share_le = _bucket(share, PROCESSING_BUCKETS)
    groups: dict[tuple[str, str], list] = defaultdict(list)  # (message type, outcome) -> messages
    for m in messages:
        groups[(m.message_type, outcomes.get(m.pk, ("unknown", ""))[0])].append(m)
    counts: dict[tuple[str, tuple], float] = defaultdict(float)  # (series, labels as tuple) -> value
    for (message_type, outcome), group in groups.items():
        t, n = type_label(message_type), len(group)
        counts[("message_attempts", (("message_type", t),))] += n
        counts[("message_outcomes", (("message_type", t), ("outcome", outcome)))] += n
        counts[("message_processing_seconds_bucket", (("message_type", t), ("le", share_le)))] += n
        counts[("message_processing_seconds_sum", (("message_type", t),))] += share * n
        counts[("message_processing_seconds_count", (("message_type", t),))] += n
        if outcome in ("processed", "noop"):
            for m in group:
                latency = max((now - m.received_at).total_seconds(), 0.0)
                le = _bucket(latency, LATENCY_BUCKETS)
                counts[("message_latency_seconds_bucket", (("message_type", t), ("le", le)))] += 1
                counts[("message_latency_seconds_sum", (("message_type", t),))] += latency
            counts[("message_latency_seconds_count", (("message_type", t),))] += n
    metric_deltas_add([(name, dict(labels), value) for (name, labels), value in counts.items()])
    records = _log_records(messages, outcomes, worker)
    traced = tracing.enabled()
    if not records and not traced:
        return  # nothing to write once it commits: no record built, no hook
    end_ns = time.time_ns()

    def emit() -> None:
        for level, text, fields in records:
            log.log(level, text, extra=fields)
        if traced:
            entries = [(m, *outcomes.get(m.pk, ("unknown", ""))) for m in messages]
            tracing.batch_span(entries=entries, start_ns=end_ns - int(elapsed * 1e9), end_ns=end_ns, worker=worker)

    # The records and the span tell what happened to the batch's messages: written once its
    # transaction has committed, never for a batch that rolled back (its messages are applied
    # again), and not while the transaction still holds the batch's central rows.
    transaction.on_commit(emit)


_TEXT = {  # the records' messages: constant texts, so that a log query can select them
    "processed": "messages processed",
    "noop": "messages processed (no-op)",
    "failed": "message failed; will retry",
    "dead_lettered": "message dead-lettered",
}


def _log_records(messages: Sequence, outcomes: dict[int, tuple[str, str]], worker: str) -> list[tuple]:
    """(level, text, fields) of the batch's log records, built only for the levels that are on.

    One INFO record per outcome that went well (processed, no-op) for the whole batch, naming its
    messages (``message_ids``, ``message_pks``, ``trace_ids``, ``terminals``, in the batch's
    order), so that a search for one message's id or trace id finds its batch's record; one
    WARNING record per message that failed or was dead-lettered, with its reason, as before.
    """
    info, warning = log.isEnabledFor(logging.INFO), log.isEnabledFor(logging.WARNING)
    if not warning:
        return []
    good: dict[str, list] = defaultdict(list)
    warnings = []
    for m in messages:
        outcome, reason = outcomes.get(m.pk, ("unknown", ""))
        if outcome in ("processed", "noop"):
            if info:
                good[outcome].append(m)
            continue
        warnings.append((logging.WARNING, _TEXT.get(outcome, f"message {outcome}"), {
            "trace_id": m.trace_id, "terminal": m.terminal.code, "message_id": m.message_id, "message_pk": m.pk,
            "message_type": m.message_type, "attempt": m.attempts, "outcome": outcome, "reason": reason,
            "worker": worker,
        }))  # fmt: skip
    records = []
    for outcome, group in good.items():
        fields = {
            "outcome": outcome,
            "reason": outcomes[group[0].pk][1],
            "count": len(group),
            "message_ids": [m.message_id for m in group],
            "message_pks": [m.pk for m in group],
            "trace_ids": [m.trace_id for m in group],
            "terminals": sorted({m.terminal.code for m in group}),
            "attempts": [m.attempts for m in group],
            "worker": worker,
        }
        if len(fields["terminals"]) == 1:
            fields["terminal"] = fields["terminals"][0]
        if len(set(fields["trace_ids"])) == 1:  # one SOAP call's messages: the line is in its trace
            fields["trace_id"] = fields["trace_ids"][0]
        records.append((logging.INFO, _TEXT[outcome], fields))
    return records + warnings


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

"""The checker: holds the hub to every answer it gave the simulated terminals.

After a scenario it waits for the queue to settle, then compares the ledger (what each
terminal was told) with the message table, the event log and the central store:

- lost: told ``Accepted`` (or ``Duplicate``) but no row, or a good message that did not end
  ``Processed`` / a bad one that did not end ``DeadLettered``;
- duplicated (applied twice): a message with more than one ``-> Processed`` event, more than
  one row for one (terminal, message id), a live counter that differs from a recount of the
  central store, or a central row whose sequence is not that of the newest processed change;
- stuck: anything still ``Received``/``Processing``/``Failed`` once the wait is over;
- recovered: messages that survived a crash (a lease re-claimed: ``Processing -> Processing``)
  and batches a terminal had to re-send after a fault or a dropped connection.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tests.chaos.harness import Stack, wait_until
from tests.chaos.load import Ledger

# Seconds from the database's return (scenarios 4 and 4b) to an empty backlog.
DATABASE_RECOVERY_BOUND = 120

EXPECTED_END = {"good": "Processed", "json": "DeadLettered", "type": "DeadLettered", "poison": "DeadLettered"}


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(round(pct / 100 * (len(values) - 1))))]


@dataclass
class Report:
    scenario: str
    acknowledged: int = 0
    accepted: int = 0
    rows: int = 0
    processed: int = 0
    dead_lettered: int = 0
    lost: int = 0
    wrong_end_state: int = 0
    duplicated: int = 0
    stuck: int = 0
    counter_mismatches: int = 0
    central_mismatches: int = 0
    recovered_leases: int = 0  # messages whose lease was re-claimed after their worker died
    recovered_batches: int = 0  # batches a terminal re-sent after a fault / lost reply
    submit_retries: int = 0
    duplicate_answers_on_retry: int = 0
    stored_without_ack: int = 0  # stored, but the terminal never heard (it gave up)
    # terminals of the load that were acknowledged nothing: a scenario whose load went silent
    # (its clients could not even start) checks nothing, and must not pass
    silent_terminals: int = 0
    max_processing_seconds: float = 0.0  # longest time any message stayed Processing
    e2e_p50_ms: float = 0.0
    e2e_p99_ms: float = 0.0
    soap_p50_ms: float = 0.0
    soap_p99_ms: float = 0.0
    extra: dict = field(default_factory=dict)
    examples: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not (
            self.lost
            or self.wrong_end_state
            or self.duplicated
            or self.stuck
            or self.counter_mismatches
            or self.central_mismatches
            or self.silent_terminals
            or not self.acknowledged
        )

    def render(self) -> str:
        head = (
            f"[chaos:{self.scenario}] acknowledged={self.acknowledged} rows={self.rows} processed={self.processed} "
            f"dead_lettered={self.dead_lettered} | LOST={self.lost} WRONG_END={self.wrong_end_state} "
            f"DUPLICATED={self.duplicated} STUCK={self.stuck} counters_off={self.counter_mismatches} "
            f"central_off={self.central_mismatches} | recovered: leases={self.recovered_leases} "
            f"batches={self.recovered_batches} (retries={self.submit_retries}, "
            f"duplicate answers on retry={self.duplicate_answers_on_retry}) "
            f"stored_without_ack={self.stored_without_ack}"
            + (f" SILENT_TERMINALS={self.silent_terminals}" if self.silent_terminals else "")
        )
        lat = (
            f"  max Processing {self.max_processing_seconds:.1f}s | e2e p50={self.e2e_p50_ms:.0f}ms "
            f"p99={self.e2e_p99_ms:.0f}ms | SubmitMessages p50={self.soap_p50_ms:.0f}ms p99={self.soap_p99_ms:.0f}ms"
        )
        lines = [head, lat]
        if self.extra:
            lines.append("  " + " ".join(f"{k}={v}" for k, v in self.extra.items()))
        for name, sample in self.examples.items():
            if sample:
                lines.append(f"  e.g. {name}: {sample[:5]}")
        return "\n".join(lines)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        with (directory / "chaos-results.jsonl").open("a") as f:
            f.write(json.dumps({k: v for k, v in asdict(self).items() if k != "examples"}) + "\n")


def settle(stack: Stack, timeout: float) -> bool:
    """Wait until nothing is Received/Processing/Failed (workers recover on their own)."""
    return wait_until(lambda: stack.backlog() == 0, timeout, 0.5)


def check(stack: Stack, ledger: Ledger, scenario: str, *, settle_timeout: float = 180, summary=None) -> Report:
    settle(stack, settle_timeout)
    report = Report(scenario=scenario)
    acknowledged = ledger.acknowledged()
    report.acknowledged = len(acknowledged)
    report.accepted = len(ledger.accepted())
    report.recovered_batches = ledger.batches_retried
    report.submit_retries = ledger.submit_retries
    report.duplicate_answers_on_retry = ledger.retried_answers.get("Duplicate", 0)

    rows = stack.query(
        "SELECT t.code, m.message_id, s.state, m.id, s.attempts,"
        " extract(epoch FROM s.processed_at - m.received_at)"
        " FROM queue_messages_message m JOIN terminals_terminal t ON t.id = m.terminal_id"
        # LEFT: an envelope whose state row is missing must still be counted (and fail as a
        # wrong end state), not silently drop out of the comparison
        " LEFT JOIN queue_messages_messagestate s ON s.id = m.id"
    )
    report.rows = len(rows)
    stored: dict[tuple[str, str], tuple] = {}
    twice = []
    for code, message_id, state, pk, attempts, e2e in rows:
        if (code, message_id) in stored:
            twice.append((code, message_id))
        stored[(code, message_id)] = (state, pk, attempts, e2e)
    report.processed = sum(1 for r in stored.values() if r[0] == "Processed")
    report.dead_lettered = sum(1 for r in stored.values() if r[0] == "DeadLettered")

    lost = [k for k in acknowledged if k not in stored]
    wrong = [
        (k, s.kind, stored[k][0])
        for k, s in acknowledged.items()
        if k in stored and stored[k][0] != EXPECTED_END.get(s.kind, stored[k][0])
    ]
    stuck = [k for k, r in stored.items() if r[0] in ("Received", "Processing", "Failed")]
    report.lost, report.wrong_end_state, report.stuck = len(lost), len(wrong), len(stuck)
    report.stored_without_ack = sum(1 for k in stored if k in ledger.messages and k not in acknowledged)
    report.silent_terminals = len(ledger.terminals - {code for code, _ in acknowledged})

    # one "-> Processed" event per processed message, none for any other
    done_twice = stack.query(
        "SELECT message_id, count(*) FROM queue_messages_messageevent WHERE to_state = 'Processed'"
        " GROUP BY message_id HAVING count(*) > 1"
    )
    processed_without_event = stack.scalar(
        "SELECT count(*) FROM queue_messages_messagestate s WHERE s.state = 'Processed' AND NOT EXISTS"
        " (SELECT 1 FROM queue_messages_messageevent e WHERE e.message_id = s.id AND e.to_state = 'Processed')"
    )
    report.duplicated = len(done_twice) + len(twice) + processed_without_event

    # live counters == a recount of the central store
    counters = stack.query(
        "SELECT COALESCE(c.terminal_code, r.terminal_code), COALESCE(c.entity_type, r.entity_type),"
        " COALESCE(c.live_count, 0), COALESCE(r.n, 0)"
        " FROM queue_messages_entitycounter c FULL OUTER JOIN"
        " (SELECT terminal_code, entity_type, count(*) AS n FROM queue_messages_centralentity"
        "  WHERE NOT deleted GROUP BY terminal_code, entity_type) r"
        " ON r.terminal_code = c.terminal_code AND r.entity_type = c.entity_type"
        " WHERE COALESCE(c.live_count, 0) <> COALESCE(r.n, 0)"
    )
    report.counter_mismatches = len(counters)

    # each central row holds the newest processed change of its entity (nothing lost, no old overwrite)
    central = stack.query(
        "SELECT ce.entity_type, ce.entity_key, ce.terminal_code, ce.last_sequence, latest.seq"
        " FROM queue_messages_centralentity ce FULL OUTER JOIN ("
        "  SELECT m.entity_type, m.entity_key, t.code, max(m.sequence) AS seq FROM queue_messages_message m"
        "  JOIN queue_messages_messagestate s ON s.id = m.id JOIN terminals_terminal t ON t.id = m.terminal_id"
        "  WHERE s.state = 'Processed' AND (m.message_type LIKE '%.upsert' OR m.message_type LIKE '%.delete')"
        "  GROUP BY m.entity_type, m.entity_key, t.code) latest"
        " ON latest.entity_type = ce.entity_type AND latest.entity_key = ce.entity_key"
        " AND latest.code = ce.terminal_code"
        " WHERE ce.last_sequence IS DISTINCT FROM latest.seq"
    )
    report.central_mismatches = len(central)

    # crash recovery: leases re-claimed, and how long anything stayed Processing
    report.recovered_leases = stack.scalar(
        "SELECT count(DISTINCT message_id) FROM queue_messages_messageevent"
        " WHERE from_state = 'Processing' AND to_state = 'Processing'"
    )
    report.max_processing_seconds = float(
        stack.scalar(
            "SELECT COALESCE(max(extract(epoch FROM nxt - at)), 0) FROM ("
            " SELECT to_state, at, lead(at) OVER (PARTITION BY message_id ORDER BY at, id) AS nxt"
            " FROM queue_messages_messageevent) e WHERE to_state = 'Processing' AND nxt IS NOT NULL"
        )
        or 0
    )
    e2e = [float(r[3]) * 1000 for r in stored.values() if r[0] == "Processed" and r[3] is not None]
    report.e2e_p50_ms, report.e2e_p99_ms = percentile(e2e, 50), percentile(e2e, 99)
    if summary is not None:
        report.soap_p50_ms = summary.percentile("SubmitMessages", 50) * 1000
        report.soap_p99_ms = summary.percentile("SubmitMessages", 99) * 1000
    if wrong:
        # why: the dead letters' reasons, grouped (the first thing to read when this fails)
        pks = [stored[k][1] for k, _, _ in wrong]
        report.extra["wrong_end_reasons"] = stack.query(
            "SELECT group_key, count(*) FROM queue_messages_deadletter WHERE message_id = ANY(%s)"
            " GROUP BY group_key ORDER BY count(*) DESC LIMIT 5",
            (pks,),
        )
    report.examples = {
        "lost": lost,
        "wrong_end_state": wrong,
        "stuck": stuck,
        "applied_twice": done_twice,
        "counters": counters,
        "central": central,
    }
    return report

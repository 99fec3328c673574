"""The load: the project's terminal simulator, with a ledger of every answer it was given.

``ChaosTerminal`` is the simulator's till with two changes that make it a witness:

- it records, per message, what the hub answered (``Accepted``/``Duplicate``/``Rejected``)
  and whether the message was deliberately bad, so the checker can hold the hub to every
  ``Accepted``;
- like a real till with an outbox, it keeps re-sending the *same* batch after a fault or a
  transport error (database down, web worker killed before it replied) until the hub
  answers, instead of dropping it.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from terminals.simulator import SimConfig, SimulatedTerminal, Summary, make_client, run_simulation

RETRYABLE_FAULTS = {"Server.Unavailable", "Server"}


@dataclass
class Sent:
    terminal: str
    message_id: str | None
    kind: str  # "good", "json" (truncated payload), "type" (no handler), "missing" (no MessageId)
    answers: list[str] = field(default_factory=list)
    first_sent: float = 0.0
    answered_at: float | None = None


@dataclass
class Ledger:
    """Everything the simulated terminals sent and were told, keyed by (terminal, message id)."""

    messages: dict[tuple[str, str], Sent] = field(default_factory=dict)
    batches_retried: int = 0  # batches that needed more than one SubmitMessages call
    submit_retries: int = 0  # extra calls caused by faults / transport errors
    retry_reasons: Counter = field(default_factory=Counter)
    retried_answers: Counter = field(default_factory=Counter)  # answers received on a retry
    terminals: set = field(default_factory=set)  # the codes of the load's tills
    gave_up: int = 0  # batches never answered before the till's patience ran out
    missing_id_answered: int = 0  # deliberately id-less messages the hub answered (must be Rejected)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def acknowledged(self) -> dict[tuple[str, str], Sent]:
        """Messages the hub told the terminal it holds (Accepted, or Duplicate of a stored one)."""
        return {k: s for k, s in self.messages.items() if any(a in ("Accepted", "Duplicate") for a in s.answers)}

    def accepted(self) -> dict[tuple[str, str], Sent]:
        return {k: s for k, s in self.messages.items() if "Accepted" in s.answers}


def _kind(message: dict, bad: bool) -> str:
    if not bad:
        return "good"
    if message["MessageId"] is None:
        return "missing"
    if message["MessageType"] == "promo.apply":
        return "type"
    return "json"


class ChaosTerminal(SimulatedTerminal):
    def __init__(self, *args, ledger: Ledger, patience: float, **kwargs):
        super().__init__(*args, **kwargs)
        self.ledger = ledger
        with ledger.lock:
            ledger.terminals.add(self.code)
        self.patience = patience
        self.kinds: dict[str, str] = {}

    def _message(self):
        message, bad = super()._message()
        if message["MessageId"] is not None:
            self.kinds[message["MessageId"]] = _kind(message, bad)
        return message, bad

    def submit(self, client, batch: list[dict]) -> None:
        from zeep.exceptions import Fault

        now = time.monotonic()
        with self.ledger.lock:
            for m in batch:
                if m["MessageId"] is not None:
                    key = (self.code, m["MessageId"])
                    if key not in self.ledger.messages:
                        self.ledger.messages[key] = Sent(self.code, m["MessageId"], self.kinds[m["MessageId"]])
                        self.ledger.messages[key].first_sent = now
        give_up_at = now + self.patience
        tries = 0
        while True:
            tries += 1
            started = time.perf_counter()
            reason = None
            results = None
            try:
                results = client.service.SubmitMessages(messages={"SyncMessage": batch})
            except Fault as exc:
                reason = str(exc.code).rpartition(":")[2] or "unknown"
                with self.lock:
                    self.summary.faults[reason] += 1
            except Exception as exc:  # the web worker died, connection refused...
                reason = type(exc).__name__
                with self.lock:
                    self.summary.errors[reason] += 1
            finally:
                with self.lock:
                    self.summary.calls["SubmitMessages"] += 1
                    self.summary.latencies["SubmitMessages"].append(time.perf_counter() - started)
            if reason is None:
                break
            with self.ledger.lock:
                self.ledger.retry_reasons[reason] += 1
                if reason.startswith("Client"):
                    self.ledger.gave_up += 1  # a contract refusal is final: resending will not help
                    return
                self.ledger.submit_retries += 1
                if tries == 1:
                    self.ledger.batches_retried += 1
            if time.monotonic() > give_up_at:
                with self.ledger.lock:
                    self.ledger.gave_up += 1
                return
            time.sleep(self.rng.uniform(0.3, 1.0))
        answered = time.monotonic()
        with self.lock:
            self.summary.sent += len(batch)
        with self.ledger.lock, self.lock:
            for m, r in zip(batch, results or [], strict=False):
                self.summary.count_answer(r.Status)
                if m["MessageId"] is None:
                    self.ledger.missing_id_answered += 1
                    continue
                sent = self.ledger.messages[(self.code, m["MessageId"])]
                sent.answers.append(r.Status)
                sent.answered_at = sent.answered_at or answered
                if tries > 1:
                    self.ledger.retried_answers[r.Status] += 1


def run_load(
    config: SimConfig, credentials: dict[str, str], ledger: Ledger | None = None, patience: float = 180.0
) -> tuple[Summary, Ledger]:
    """Run one ChaosTerminal thread per terminal until the config's duration is over."""
    ledger = ledger or Ledger()

    def terminal(*args):
        return ChaosTerminal(*args, ledger=ledger, patience=patience)

    summary = run_simulation(config, credentials, terminal=terminal, grace=patience + 60)
    return summary, ledger


class LoadThread(threading.Thread):
    """``run_load`` in the background while a scenario injects faults."""

    def __init__(
        self, config: SimConfig, credentials: dict[str, str], patience: float = 180.0, ledger: Ledger | None = None
    ):
        super().__init__(name="chaos-load", daemon=True)
        self.config, self.credentials, self.patience = config, credentials, patience
        self.summary: Summary | None = None
        self.ledger = ledger or Ledger()
        self.error: BaseException | None = None

    def run(self):
        try:
            self.summary, _ = run_load(self.config, self.credentials, self.ledger, self.patience)
        except BaseException as exc:  # surfaced by the scenario
            self.error = exc


__all__ = ["Ledger", "LoadThread", "SimConfig", "make_client", "run_load"]

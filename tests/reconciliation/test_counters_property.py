"""Property: whatever happens to the messages, the live counters equal a recount of the store.

Random sequences of upserts, deletes, duplicate submissions, out-of-order sequences,
transient handler failures with retries and dead letters, workers that die holding a lease,
and workers that crash between the central write and the state change, all driven through
the real engine services. After every step the counters must equal the recount (the
reconciliation run must see no counter drift), and once everything is drained the store
must hold exactly what the highest sequence per entity says.
"""

import json
from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from messages import services as engine
from messages.handlers import EntityHandler, registry
from messages.models import EntityCounter, Message, MessageState
from messages.services import failures as engine_failures
from messages.services import processing as engine_processing
from reconciliation import selectors, services
from reconciliation.models import RunTrigger
from tests.reconciliation.helpers import drain_all

S = MessageState
ENTITIES = ("product", "sale")
KEYS = ("A", "B", "C", "D")
PAST = datetime(2000, 1, 1, tzinfo=UTC)


class FlakyEntityHandler(EntityHandler):
    """The default entity handler, failing transiently while payload["fail"] >= attempts."""

    enabled = True

    def apply_many(self, items):
        for item in items:
            fail = item.payload.get("fail", 0) if isinstance(item.payload, dict) else 0
            if self.enabled and fail >= item.message.attempts:
                raise ConnectionResetError("flaky upstream")
        super().apply_many(items)


submit = st.tuples(
    st.just("submit"),
    st.sampled_from(ENTITIES),
    st.sampled_from(KEYS),
    st.integers(1, 12),  # sequence: random order, so older ones arrive late
    st.sampled_from(["upsert", "upsert", "delete"]),
    st.integers(0, 3),  # transient failures before it succeeds (3 = dead-lettered first)
)
step = st.one_of(
    submit,
    st.tuples(st.just("resubmit"), st.integers(0, 50)),  # the same MessageId again: a duplicate
    st.tuples(st.just("drain"), st.integers(1, 4)),
    st.tuples(st.just("worker_dies"), st.integers(1, 4)),  # claims, then its lease expires
    st.tuples(st.just("crash_before_commit"), st.integers(1, 4)),
    st.tuples(st.just("retry_dead_letters")),
)


_real_transition = engine.message_transition


def crash(**kw):
    if kw.get("to_state") != S.PROCESSING:  # after the handler ran, whatever it did
        raise SystemExit("killed after the central write")
    return _real_transition(**kw)


def assert_counters_equal_recount():
    counters = {cell: n for cell, n in selectors.counter_values().items() if n}
    assert counters == selectors.central_recount()


def make_due():
    Message.objects.filter(state=S.FAILED).update(next_attempt_at=PAST)
    Message.objects.filter(state=S.PROCESSING).update(lease_expires_at=PAST)


@pytest.fixture
def flaky():
    handler = FlakyEntityHandler()
    for entity in ENTITIES:
        for op in ("upsert", "delete"):
            registry.register(f"{entity}.{op}", handler)
    yield handler
    for entity in ENTITIES:
        for op in ("upsert", "delete"):
            registry.unregister(f"{entity}.{op}")


@pytest.mark.django_db
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(step, min_size=1, max_size=30))
def test_counters_always_equal_recount(terminal, flaky, steps, django_settings_max_attempts):
    flaky.enabled = True
    with transaction.atomic():
        submitted: list[engine.Envelope] = []
        used: dict[tuple[str, str], set[int]] = {}
        for s in steps:
            kind = s[0]
            if kind == "submit":
                _, entity, key, seq, op, fail = s
                seqs = used.setdefault((entity, key), set())
                while seq in seqs:  # one message per sequence per entity, so the final state is defined
                    seq += 1
                seqs.add(seq)
                envelope = engine.Envelope(
                    message_id=f"m{len(submitted)}",
                    message_type=f"{entity}.{op}",
                    entity_key=key,
                    sequence=seq,
                    created_at=datetime.now(UTC),
                    payload=json.dumps({"fail": fail, "seq": seq}),
                )
                submitted.append(envelope)
                assert engine.message_ingest_batch(terminal=terminal, envelopes=[envelope])[0].status == "Accepted"
            elif kind == "resubmit" and submitted:
                again = submitted[s[1] % len(submitted)]
                assert engine.message_ingest_batch(terminal=terminal, envelopes=[again])[0].status == "Duplicate"
            elif kind == "drain":
                make_due()
                if batch := engine.message_claim(worker="w", limit=s[1]):
                    engine.message_process_batch(messages=batch, worker="w")
            elif kind == "worker_dies":
                make_due()
                if batch := engine.message_claim(worker="doomed", limit=s[1]):
                    Message.objects.filter(pk__in=[m.pk for m in batch]).update(
                        lease_expires_at=datetime.now(UTC) - timedelta(seconds=1)
                    )
            elif kind == "crash_before_commit":
                make_due()
                if batch := engine.message_claim(worker="crashy", limit=s[1]):
                    with (
                        mock.patch.object(engine_processing, "messages_complete", crash),  # processed
                        mock.patch.object(engine_failures, "message_transition", crash),  # failed/dead-lettered
                        pytest.raises(SystemExit),
                    ):
                        engine.message_process_batch(messages=batch, worker="crashy")
            elif kind == "retry_dead_letters":
                dead = Message.objects.filter(state=S.DEAD_LETTERED).values_list("pk", flat=True)
                engine.message_retry(message_ids=list(dead), actor="user:test")
            assert_counters_equal_recount()

        # Let everything through: the store must now say what the highest sequences say.
        flaky.enabled = False
        for _ in range(20):  # a drain stops early when a lease-expired message is dead-lettered
            if not Message.objects.exclude(state=S.PROCESSED).exists():
                break
            engine.message_retry(
                message_ids=list(Message.objects.filter(state=S.DEAD_LETTERED).values_list("pk", flat=True)),
                actor="user:test",
            )
            make_due()
            drain_all(worker="final")
        assert set(Message.objects.values_list("state", flat=True)) <= {S.PROCESSED}
        assert_counters_equal_recount()
        latest: dict[tuple[str, str], engine.Envelope] = {}
        for e in submitted:
            cell = (e.message_type.partition(".")[0], e.entity_key)
            if cell not in latest or e.sequence > latest[cell].sequence:
                latest[cell] = e
        expected: dict[tuple[str, str], int] = {}
        for (entity, _), e in latest.items():
            if e.message_type.endswith(".upsert"):
                expected[(terminal.code, entity)] = expected.get((terminal.code, entity), 0) + 1
        assert selectors.central_recount() == expected
        assert {c: n for c, n in selectors.counter_values().items() if n} == expected
        run = services.run_now(trigger=RunTrigger.COMMAND, triggered_by="test")
        assert run.counter_drift_count == 0
        transaction.set_rollback(True)


@pytest.fixture
def django_settings_max_attempts(settings):
    settings.SYNC_MAX_ATTEMPTS = 3
    return settings


def test_property_can_fail_when_a_counter_is_wrong(terminal, db):
    """The invariant check above is not vacuous: a drifted counter breaks it."""
    engine.message_ingest_batch(
        terminal=terminal,
        envelopes=[engine.Envelope("x", "product.upsert", "A", 1, datetime.now(UTC), "{}")],
    )
    drain_all()
    assert_counters_equal_recount()
    EntityCounter.objects.update(live_count=5)
    with pytest.raises(AssertionError):
        assert_counters_equal_recount()

"""bench/engine_hot_design.py: the engine's claim, audited once per batch, still claims and records every message.

The design's drain figure is evidence only if its workers ran today's claim with just the audit
changed: these run the real claim (messages/services/claim.py) through the benchmark's rewrite on
PostgreSQL, and show that the rewrite refuses a claim statement it no longer recognises.
"""

import pytest
from django.db import connection

from bench import engine_hot_design as design
from messages import services
from messages.models import MessageEvent, MessageState
from messages.services import claim
from tests.messages.helpers import env

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def test_the_claim_writes_one_audit_row_per_batch_naming_each_message_its_attempt_and_state(terminal, monkeypatch):
    services.message_ingest_batch(terminal=terminal, envelopes=[env(f"m{i}", f"K{i}", seq=1) for i in range(5)])
    with connection.cursor() as cursor:  # in the test's transaction: rolled back with it
        for statement in design.CLAIM_AUDIT_DDL:
            cursor.execute(statement)
    monkeypatch.setattr(claim, "server_binding_cursor", claim.server_binding_cursor)  # restored after the test
    design.claims_audited_per_batch()

    claimed = services.message_claim(worker="w1", limit=10)

    assert len(claimed) == 5 and all(m.state == MessageState.PROCESSING and m.attempts == 1 for m in claimed)
    assert not MessageEvent.objects.filter(to_state=MessageState.PROCESSING).exists()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT to_state, actor, ids, attempts, from_states FROM {design.CLAIM_AUDIT}")
        ((to_state, actor, ids, attempts, from_states),) = cursor.fetchall()
    assert (to_state, actor) == (MessageState.PROCESSING, "w1")
    assert sorted(ids) == sorted(m.pk for m in claimed)
    assert attempts == [1] * 5 and from_states == [MessageState.RECEIVED] * 5


def test_other_statements_pass_unchanged_and_a_claim_of_another_form_is_refused():
    completion = "WITH moved AS (UPDATE s SET state = %s RETURNING id) SELECT count(*) FROM moved"
    assert design.claim_audited_per_batch(completion) == completion
    changed = (
        "WITH moved AS (UPDATE s SET state = %s RETURNING id), events AS (INSERT INTO queue_messages_messageevent"
        " (message_id, at) SELECT id, now() FROM moved) SELECT * FROM moved"
    )
    with pytest.raises(RuntimeError, match="claim's statement changed"):
        design.claim_audited_per_batch(changed)

"""PostgreSQL: the claim walks the due index in order, whatever the table's statistics say."""

import pytest
from django.db import connection, transaction
from django.utils import timezone

from messages import services
from messages.models import Message
from messages.services import processing
from tests.messages.test_services import env

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def claim_plan() -> str:
    qs = (
        Message.objects.filter(state__in=("Received", "Failed"), next_attempt_at__lte=timezone.now())
        .select_related("terminal")
        .only(*processing.CLAIM_FIELDS)
        .order_by("next_attempt_at")
        .select_for_update(skip_locked=True, of=("self",))
    )[:100]
    with connection.cursor() as cursor:
        sql, params = qs.query.sql_with_params()
        cursor.execute("EXPLAIN " + sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


def test_a_backlog_is_claimed_without_sorting_it_even_when_the_planner_would(terminal):
    for start in range(0, 3000, 500):
        services.message_ingest_batch(
            terminal=terminal, envelopes=[env(f"m{i}", f"K{i}", seq=1) for i in range(start, start + 500)]
        )
    # Make the ordered index scan look expensive to the planner, as stale statistics do in the
    # field (analysed when little was due, it expects a handful of rows and sorts them all).
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL random_page_cost = 1000")
        assert "Sort" in claim_plan()  # the hazard is real on this table
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL random_page_cost = 1000")
        processing._prefer_index_order("default")
        plan = claim_plan()
    assert "Sort" not in plan and "message_due_idx" in plan, plan
    batch = services.message_claim(worker="w1", limit=100)
    assert len(batch) == 100 and all(int(m.message_id[1:]) < 500 for m in batch)  # the oldest due first


def test_the_queue_tables_are_vacuumed_and_analysed_early():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname, reloptions FROM pg_class WHERE relname IN (%s, %s)",
            ["queue_messages_message", "queue_messages_messageevent"],
        )
        options = dict(cursor.fetchall())
    for table in ("queue_messages_message", "queue_messages_messageevent"):
        assert "autovacuum_analyze_scale_factor=0.02" in options[table], options
        assert "autovacuum_vacuum_scale_factor=0.02" in options[table], options

"""bench/ceiling_v2.py: the v2 schema's drain takes every message exactly once, and its check says when not.

The v2 figure in ``bench/engine_ceiling.py`` is only evidence if its drain did the engine's work:
these tests drain a small backlog on the real PostgreSQL through the script's own code and count
the rows, then show that the check fails a drain that skipped or repeated work.
"""

import os

import psycopg
import pytest

from bench import ceiling_v2, engine_ceiling
from bench._common import drop_database
from tests.processes import postgres_url

pytestmark = pytest.mark.postgres

DATABASE = f"syncadmin_ceiling_v2_test_{os.getpid()}"


@pytest.fixture
def dsn() -> str:
    server = postgres_url("")
    args = engine_ceiling.parse_args(["--messages", "1000", "--terminals", "4", "--batch", "30", "--pg", server,
                                      "--database", DATABASE])  # fmt: skip
    yield engine_ceiling.prepare(args), args
    drop_database(server, DATABASE)


HOT_DESIGN = ceiling_v2.Variant(fillfactor=85, lease_index=False, batch_leases=True)


PER_MESSAGE = ceiling_v2.Variant(fillfactor=70, per_message_audit=True, last_error=False)


@pytest.mark.parametrize("variant", [engine_ceiling.V2, PER_MESSAGE, HOT_DESIGN])
def test_the_v2_drain_takes_every_message_exactly_once(dsn, variant):
    url, args = dsn
    rate, _deadlocks, writes = engine_ceiling.measure_v2(args, url, variant)  # exits if its own check fails
    assert rate > 0
    assert "2,000 updates" in writes  # the claim and the completion, one update each per message
    if variant.batch_leases:  # the design's point: completions written in place (its first cut indexed updated_at)
        assert ", 0 HOT" not in writes, writes
    with psycopg.connect(url) as conn:
        assert conn.execute(f"SELECT count(*), count(DISTINCT id) FROM {ceiling_v2.ENVELOPE}").fetchone() == (
            1000,
            1000,
        )
        states = conn.execute(f"SELECT state, attempts, count(*) FROM {ceiling_v2.STATE} GROUP BY 1, 2").fetchall()
        assert states == [("Processed", 1, 1000)]
        if variant.per_message_audit:
            claimed = f"SELECT message_id FROM {ceiling_v2.EVENT} WHERE to_state = 'Processing'"
            assert conn.execute(f"SELECT count(*) FROM {ceiling_v2.CLAIM_AUDIT}").fetchone()[0] == 0
        else:
            claimed = f"SELECT unnest(ids) FROM {ceiling_v2.CLAIM_AUDIT}"
            batches = conn.execute(f"SELECT count(*), max(cardinality(ids)) FROM {ceiling_v2.CLAIM_AUDIT}").fetchone()
            assert batches[0] >= 1000 // 30 and batches[1] <= 30  # one audit row per claimed batch
        assert conn.execute(f"SELECT count(*), count(DISTINCT c) FROM ({claimed}) AS x(c)").fetchone() == (1000, 1000)
        done = f"SELECT count(*), count(DISTINCT message_id) FROM {ceiling_v2.EVENT} WHERE to_state = 'Processed'"
        assert conn.execute(done).fetchone() == (1000, 1000)
        if variant.batch_leases:  # each batch's lease released by its completion; none left waiting
            assert conn.execute(f"SELECT count(*) FROM {ceiling_v2.LEASE}").fetchone()[0] == 0
            waiting = f"SELECT count(*) FROM {ceiling_v2.STATE} WHERE waiting_state IS NOT NULL"
            assert conn.execute(waiting).fetchone()[0] == 0
            indexes = conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = %s", [ceiling_v2.STATE])
            # Nothing the completion changes is indexed: the HOT design's whole point.
            assert sorted(r[0] for r in indexes) == ["v2_state_due", "v2_state_pkey", "v2_state_waiting"]


def test_the_check_refuses_a_drain_that_skipped_or_repeated_work(dsn):
    url, _args = dsn
    variant = engine_ceiling.V2
    with psycopg.connect(url, autocommit=True) as conn:
        total = ceiling_v2.reset(conn, variant)
        assert total == 1000
        assert "1000 messages not Processed exactly once" in ceiling_v2.problems(conn, variant, total)
        # Everything moved to Processed with its completion events, but one message claimed twice
        # and one never audited as claimed.
        conn.execute(f"UPDATE {ceiling_v2.STATE} SET state = 'Processed', attempts = 1")
        conn.execute(f"INSERT INTO {ceiling_v2.EVENT} (message_id, from_state, to_state, at, actor, reason,"
                     " error_class, traceback, attempt) SELECT id, 'Processing', 'Processed', now(), 't', '', '', '', 1"
                     f" FROM {ceiling_v2.STATE}")  # fmt: skip
        conn.execute(f"INSERT INTO {ceiling_v2.CLAIM_AUDIT} (at, actor, ids, attempts, from_states) SELECT now(), 't',"
                     " array_agg(id), array_agg(1), array_agg('Received'::text)"
                     f" FROM (SELECT id FROM {ceiling_v2.STATE} WHERE id <> 2 UNION ALL SELECT 1) AS c")  # fmt: skip
        assert ceiling_v2.problems(conn, variant, total) == ["1000 claim audits for 999 of 1000 messages"]
    with pytest.raises(SystemExit, match="missing or stale in the central store"):
        engine_ceiling.verify_v2(url, variant, total)


def test_the_hot_design_is_refused_half_built_and_its_check_finds_a_lease_left_behind(dsn):
    url, _args = dsn
    with pytest.raises(ValueError):
        ceiling_v2.Variant(batch_leases=True)  # it keeps the lease index: not the HOT design
    with psycopg.connect(url, autocommit=True) as conn:
        total = ceiling_v2.reset(conn, HOT_DESIGN)
        conn.execute(f"UPDATE {ceiling_v2.STATE} SET state = 'Processed', attempts = 1, waiting_state = NULL")
        conn.execute(f"INSERT INTO {ceiling_v2.LEASE} VALUES (1, 't', now())")
        conn.execute(f"UPDATE {ceiling_v2.STATE} SET waiting_state = 'Failed' WHERE id = 3")
        found = ceiling_v2.problems(conn, HOT_DESIGN, total)
        assert "1 batch leases left after the drain" in found
        assert "1 messages still indexed as waiting" in found

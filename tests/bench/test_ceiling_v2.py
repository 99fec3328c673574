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


@pytest.mark.parametrize("variant", [engine_ceiling.V2, ceiling_v2.Variant(fillfactor=70, per_message_audit=True,
                                                                             last_error=False)])  # fmt: skip
def test_the_v2_drain_takes_every_message_exactly_once(dsn, variant):
    url, args = dsn
    rate, _deadlocks, writes = engine_ceiling.measure_v2(args, url, variant)  # exits if its own check fails
    assert rate > 0
    assert "2,000 updates" in writes  # the claim and the completion, one update each per message
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

"""bench/engine_ceiling.py: its forms do the engine's whole work, and its check catches one that does not.

The ceiling is only evidence if every form it times did at least what the engine must do; the
script checks that after each form (``verify``). These tests run it small against the real
PostgreSQL and show that the check fails a form that skipped work.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import engine_ceiling
from bench._common import drop_database
from tests.processes import postgres_url

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]
DATABASE = f"syncadmin_ceiling_test_{os.getpid()}"  # unique: tests of other checkouts may run at once


@pytest.fixture
def pg_server() -> str:
    server = postgres_url("")
    yield server
    drop_database(server, DATABASE)


def test_every_form_runs_and_passes_its_own_check(pg_server):
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    run = subprocess.run(
        [sys.executable, "bench/engine_ceiling.py", "--messages", "1200", "--terminals", "4", "--batch", "25",
         "--pg", pg_server, "--database", DATABASE],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.splitlines()
    # Today's schema in five forms and the v2 schema, each with its writes.
    assert sum("msg/s" in line and "reference" not in line and "WAL B/msg" in line for line in lines) == 6, run.stdout
    shares = [line for line in lines if line.rstrip().endswith("%")]
    assert len(shares) == 6, run.stdout


def test_the_check_refuses_a_form_that_skipped_the_work(pg_server):
    args = engine_ceiling.parse_args(["--messages", "300", "--terminals", "3", "--pg", pg_server,
                                      "--database", DATABASE])  # fmt: skip
    dsn = engine_ceiling.prepare(args)
    total = engine_ceiling.reset(dsn)
    assert total == 300
    with pytest.raises(SystemExit, match="not Processed exactly once"):
        engine_ceiling.verify(dsn, total)

    # Everything moved to Processed with its events, but the central store left empty.
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"UPDATE {engine_ceiling.MSG} SET state = 'Processed', attempts = 1")
        conn.execute(
            f"INSERT INTO {engine_ceiling.EVENT} (message_id, from_state, to_state, at, actor, reason, error_class,"
            " traceback, attempt) SELECT id, 'x', 'y', now(), 'test', '', '', '', 1"
            f" FROM {engine_ceiling.MSG}, generate_series(1, 2)"
        )
    with pytest.raises(SystemExit, match="missing or stale in the central store"):
        engine_ceiling.verify(dsn, total)

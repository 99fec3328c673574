import os
import subprocess
import sys
import time

import environ
import pytest
from django.conf import settings
from django.core.checks import run_checks

from syncadmin.settings import _tune_database


def test_retry_not_above_timeout_refuses_to_start(settings):
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "timeout": 60, "retry": 60}
    ids = {e.id for e in run_checks()}
    assert "syncadmin.E001" in ids
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "timeout": 60, "retry": 90}
    assert "syncadmin.E001" not in {e.id for e in run_checks()}


@pytest.mark.parametrize("command", ["qcluster", "sync_cluster"])
def test_qcluster_command_refuses_bad_retry(tmp_path, command):
    proc = subprocess.run(
        [sys.executable, "manage.py", command],
        cwd=settings.BASE_DIR,
        env={**os.environ, "Q_TIMEOUT": "60", "Q_RETRY": "30", "SYNC_VAR_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert "syncadmin.E001" in proc.stderr


def test_oracle_url_configures_djangos_oracle_backend():
    db = environ.Env.db_url_config("oracle://hub:secret@db.example:1521/CENTRAL")
    _tune_database(db)
    assert db["ENGINE"] == "django.db.backends.oracle"
    assert (db["USER"], db["PASSWORD"], db["HOST"], db["PORT"], db["NAME"]) == (
        "hub",
        "secret",
        "db.example",
        "1521",
        "CENTRAL",
    )
    assert db["CONN_HEALTH_CHECKS"] is True
    import oracledb  # the driver Django's Oracle backend uses (thin mode: no Oracle client needed)

    assert oracledb.__version__


def test_default_database_is_sqlite_in_var_with_wal(tmp_path):
    code = (
        "from django.db import connection; c = connection.cursor(); c.execute('PRAGMA journal_mode'); "
        "print(connection.vendor, connection.settings_dict['NAME'], c.fetchone()[0])"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "Q_BROKER")}
    out = subprocess.run(
        [sys.executable, "manage.py", "shell", "-v", "0", "-c", code],
        cwd=settings.BASE_DIR,
        env={**env, "SYNC_VAR_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out == ["sqlite", str(tmp_path / "syncadmin.sqlite3"), "wal"]


def test_redis_broker_switches_django_q(tmp_path):
    code = "from django.conf import settings; print(settings.Q_CLUSTER.get('redis'), settings.Q_CLUSTER.get('orm'))"
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import django, os; os.environ['DJANGO_SETTINGS_MODULE']='syncadmin.settings'; django.setup(); {code}",
        ],
        cwd=settings.BASE_DIR,
        env={**os.environ, "Q_BROKER": "redis://127.0.0.1:6379/3", "SYNC_VAR_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out == ["redis://127.0.0.1:6379/3", "None"]


# The demo secret key: processes that start together (web, workers, `manage.py` commands) must all
# read the same, complete key. Each child busy-waits until a common instant, then imports the
# settings, so many of them reach the key file at the same moment.
_RACE = """
import sys, time, environ, secrets, tempfile
start = float(sys.argv[1])
while time.time() < start:
    pass
from syncadmin.settings import SECRET_KEY
print(SECRET_KEY)
"""


def test_processes_racing_for_the_demo_secret_key_all_read_the_same_complete_key(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SECRET_KEY"}
    for round_ in range(6):
        var = tmp_path / str(round_)
        var.mkdir()
        start = f"{time.time() + 0.7:.3f}"
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", _RACE, start],
                cwd=settings.BASE_DIR,
                env={**env, "SYNC_VAR_DIR": str(var)},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(16)
        ]
        results = [(p.communicate(timeout=60), p.returncode) for p in procs]
        assert all(code == 0 for _, code in results), [err[-300:] for (_, err), _ in results]
        keys = {out.strip() for (out, _), _ in results}
        assert keys == {(var / "secret_key").read_text().strip()}
        assert len(keys.pop()) >= 50
        assert sorted(p.name for p in var.iterdir()) == ["secret_key", "static"]  # no temporary file left
        assert (var / "secret_key").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("rate", ["600", "0/m", "10/minute", "-1/s", "x/m"])
def test_a_malformed_api_rate_refuses_to_start(tmp_path, rate):
    proc = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=settings.BASE_DIR,
        env={**os.environ, "SYNC_VAR_DIR": str(tmp_path), "SYNC_API_RATE": rate},
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0 and "SYNC_API_RATE must be like 600/m" in proc.stderr

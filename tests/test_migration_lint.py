"""The migration linter `make lint` runs (tests/migration_lint.py) fails on an unsafe migration and passes a safe one.

A throwaway app in a temporary directory, added to the settings for a subprocess: an index
built in place and a NOT NULL column without a default fail; the same index built with
syncadmin/lib/migration_ops.py passes. PostgreSQL only: the linter reads PostgreSQL's SQL.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.db.migrations.loader import MigrationLoader

from tests.migration_lint import ACCEPTED, PROJECT_APPS
from tests.releases import releases_recorded

ROOT = Path(__file__).resolve().parent.parent

INITIAL = """
from django.db import migrations, models

class Migration(migrations.Migration):
    initial = True
    operations = [
        migrations.CreateModel(
            name="Thing",
            fields=[("id", models.BigAutoField(primary_key=True)), ("n", models.IntegerField())],
        ),
    ]
"""
PLAIN_INDEX = """
from django.db import migrations, models

class Migration(migrations.Migration):
    dependencies = [("lintprobe", "0001_initial")]
    operations = [migrations.AddIndex("thing", models.Index(fields=["n"], name="thing_n_idx"))]
"""
CONCURRENT_INDEX = """
from django.db import migrations, models
from syncadmin.lib.migration_ops import AddIndexConcurrentlyOnPostgres

class Migration(migrations.Migration):
    atomic = False
    dependencies = [("lintprobe", "0002_plain_index")]
    operations = [AddIndexConcurrentlyOnPostgres("thing", models.Index(fields=["n"], name="thing_n2_idx"))]
"""
NOT_NULL_COLUMN = """
from django.db import migrations, models

class Migration(migrations.Migration):
    dependencies = [("lintprobe", "0003_concurrent_index")]
    operations = [migrations.AddField("thing", "m", models.IntegerField(), preserve_default=False)]
"""
MIGRATIONS = {
    "0001_initial": INITIAL,
    "0002_plain_index": PLAIN_INDEX,
    "0003_concurrent_index": CONCURRENT_INDEX,
    "0004_not_null_column": NOT_NULL_COLUMN,
}


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    root = tmp_path_factory.mktemp("lintprobe")
    (root / "lintprobe" / "migrations").mkdir(parents=True)
    (root / "lintprobe" / "__init__.py").write_text("")
    (root / "lintprobe" / "migrations" / "__init__.py").write_text("")
    for name, text in MIGRATIONS.items():
        (root / "lintprobe" / "migrations" / f"{name}.py").write_text(text)
    (root / "probe_settings.py").write_text(
        "from syncadmin.settings import *  # noqa: F403\n"
        "INSTALLED_APPS = [*INSTALLED_APPS, 'lintprobe']  # noqa: F405\n"
    )
    return root


def lint(probe, *args: str) -> subprocess.CompletedProcess:
    db = settings.DATABASES["default"]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "probe_settings",
        "PYTHONPATH": f"{probe}{os.pathsep}{ROOT}",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/postgres",
    }
    return subprocess.run(
        [sys.executable, "-m", "tests.migration_lint", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("migration", "code", "says"),
    [
        ("0002_plain_index", 1, "CREATE INDEX locks table"),
        ("0003_concurrent_index", 0, "Valid migrations: 1/1"),
        ("0004_not_null_column", 1, "NOT NULL constraint on columns"),
    ],
)
def test_the_linter_fails_an_unsafe_migration_and_passes_a_safe_one(probe, migration, code, says):
    result = lint(probe, "lintprobe", migration)
    assert (result.returncode, says in result.stdout) == (code, True), result.stdout + result.stderr


@pytest.mark.postgres
def test_the_projects_migrations_pass(probe):
    result = lint(probe)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Erroneous migrations: 0/" in result.stdout


def test_every_accepted_migration_is_a_released_one_of_the_project():
    # Only a released migration may be accepted: an unreleased one is fixed instead.
    graph = MigrationLoader(None, ignore_no_migrations=True).graph
    released = {node for target in releases_recorded()[0].targets for node in graph.forwards_plan(target)}
    for node in ACCEPTED:
        assert node[0] in PROJECT_APPS and node in released, node

import os
from pathlib import Path

import pytest
from django.conf import settings


def database_vendor() -> str:
    return settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]


def pytest_collection_modifyitems(config, items):
    # PostgreSQL-only tests (SKIP LOCKED, real concurrency) run whenever DATABASE_URL points at
    # PostgreSQL; `make test` always runs that pass too, so they never vanish silently in CI.
    if database_vendor() != "postgresql":
        skip = pytest.mark.skip(reason="needs DATABASE_URL=postgres://... (run by `make test-postgres`)")
        for item in items:
            if "postgres" in item.keywords:
                item.add_marker(skip)
    if os.environ.get("CI") and database_vendor() != "postgresql" and os.environ.get("SYNC_REQUIRE_PG"):
        raise pytest.UsageError("SYNC_REQUIRE_PG is set but DATABASE_URL is not PostgreSQL")


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """pytest-django's hook, after it named this process's test databases: a SQLite test database
    is a file (settings.py says why), and Django removes an old one before it creates it, but not
    the write-ahead log a killed run left beside it, which SQLite would replay into the new file."""
    from django.db import connections

    for conn in connections.all(initialized_only=False):
        name = conn.creation._get_test_db_name() if conn.vendor == "sqlite" else None
        if name and not conn.creation.is_in_memory_db(name):
            for leftover in ("-wal", "-shm", "-journal"):
                Path(name + leftover).unlink(missing_ok=True)


@pytest.fixture
def terminal(db):
    from tests.factories import TerminalFactory

    return TerminalFactory(code="T0001")


# --- console ---------------------------------------------------------------------------------------


@pytest.fixture
def login_as(client, db, settings):
    """login_as("Support") -> the test client, logged in as a fresh member of that group.

    None gives a user with no group, "superuser" a superuser. force_login skips django-axes,
    which (rightly) refuses a login that carries no request.
    """

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast; tests only

    def _login(group: str | None):
        from tests.factories import UserFactory

        if group == "superuser":
            user = UserFactory(username="root", is_superuser=True, is_staff=True)
        else:
            user = UserFactory(username=(group or "nogroup").lower().replace(" ", "_"), group=group)
        client.force_login(user)
        client.user = user
        return client

    return _login

import os

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


@pytest.fixture
def terminal(db):
    from tests.factories import TerminalFactory

    return TerminalFactory(code="T0001")

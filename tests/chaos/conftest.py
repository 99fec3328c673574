"""Fixtures for the chaos suite: one private PostgreSQL + Redis per session, one stack per test.

The scenarios never touch the machine's shared PostgreSQL or Redis. They run in the
PostgreSQL pass of ``make test`` (short CI versions) or on demand with
``python -m tests.chaos [--long]`` (``make chaos`` / ``make chaos-long``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.conf import settings

from tests.chaos.harness import PrivatePostgres, PrivateRedis, Stack, build_template

LONG = os.environ.get("CHAOS_LONG") == "1"
_reports = []


def chaos_enabled() -> bool:
    engine = settings.DATABASES["default"]["ENGINE"]
    return os.environ.get("CHAOS") == "1" or engine.endswith("postgresql")


def pytest_collection_modifyitems(config, items):
    if chaos_enabled():
        return
    skip = pytest.mark.skip(
        reason="chaos scenarios run once, in the PostgreSQL pass of `make test` (or: python -m tests.chaos)"
    )
    for item in items:
        if "chaos" in item.keywords:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter):
    if _reports:
        terminalreporter.section("chaos checker")
        for report in _reports:
            terminalreporter.write_line(report.render())


def results_dir() -> Path:
    return Path(os.environ.get("CHAOS_RESULTS_DIR") or Path(settings.VAR_DIR) / "chaos")


@pytest.fixture
def record():
    """Keep a scenario's report for the end-of-run summary and the results file."""

    def keep(report):
        _reports.append(report)
        report.save(results_dir())
        print(report.render())
        return report

    return keep


@pytest.fixture(scope="session")
def infra(tmp_path_factory):
    pg, redis = PrivatePostgres(), PrivateRedis()
    pg.init()
    pg.start()
    redis.start()
    try:
        build_template(pg, redis, tmp_path_factory.mktemp("chaos-template"))
        yield pg, redis
    finally:
        redis.stop()
        pg.destroy()


@pytest.fixture
def stack(infra, tmp_path):
    pg, redis = infra
    if not pg.is_up():  # a scenario that stopped it and failed half-way
        pg.start()
    s = Stack(pg=pg, redis=redis, workdir=tmp_path / "stack")
    try:
        yield s
    finally:
        s.drop()

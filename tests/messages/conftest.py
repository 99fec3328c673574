"""Fixtures the bulk-job tests share (services, pacing, control and the console's views)."""

import pytest

from messages.services import bulk as services_bulk


@pytest.fixture
def enqueued(monkeypatch):
    """Record the tasks the bulk services enqueue instead of sending them to the broker."""
    calls = []
    monkeypatch.setattr(services_bulk, "bulk_job_enqueue", lambda job_id, token="": calls.append((job_id, token)))
    return calls


@pytest.fixture
def small_jobs(settings):
    settings.CONSOLE_BULK_JOB_THRESHOLD = 3
    settings.CONSOLE_BULK_JOB_CHUNK = 2

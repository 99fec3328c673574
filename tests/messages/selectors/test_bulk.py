"""A bulk job's progress: its rate leaves paused time out, its time left goes by the rate or the throttle."""

from datetime import UTC, datetime, timedelta

import pytest

from messages.models import BulkJobState
from messages.selectors.bulk import bulk_job_progress, bulk_jobs_active
from tests.factories import BulkJobFactory

J = BulkJobState
pytestmark = pytest.mark.django_db


def ago(seconds):
    return datetime.now(UTC) - timedelta(seconds=seconds)


def test_the_rate_leaves_earlier_pauses_out():
    job = BulkJobFactory(state=J.RUNNING, total=1000, done=300, started_at=ago(100), paused_seconds=40.0)
    progress = bulk_job_progress(job=job)
    assert progress.rate == pytest.approx(5.0, rel=0.02)  # 300 in the 60 s it ran, not in the 100 s since start
    assert progress.eta_seconds == pytest.approx(140, rel=0.02)
    assert progress.paused_seconds == 40.0 and progress.elapsed_seconds == pytest.approx(100, abs=1)


def test_a_paused_job_has_no_time_left_and_its_pause_counts_as_it_goes():
    job = BulkJobFactory(
        state=J.PAUSED, total=1000, done=300, started_at=ago(100), paused_seconds=40.0, paused_at=ago(10), rate=50
    )
    progress = bulk_job_progress(job=job)
    assert progress.rate == pytest.approx(6.0, rel=0.02)  # 300 / (100 - 40 - 10)
    assert progress.eta_seconds is None and progress.paused_seconds == pytest.approx(50, abs=1)


def test_the_time_left_goes_by_the_throttle_until_the_job_has_a_rate_of_its_own():
    job = BulkJobFactory(state=J.RUNNING, total=600, done=0, started_at=ago(0), rate=20)
    progress = bulk_job_progress(job=job)
    assert progress.rate is None and progress.limit == 20 and progress.eta_seconds == pytest.approx(30)


def test_the_time_left_never_counts_on_more_than_the_throttle():
    job = BulkJobFactory(state=J.RUNNING, total=1000, done=500, started_at=ago(10), rate=20)  # a burst: 50/s
    assert bulk_job_progress(job=job).eta_seconds == pytest.approx(25)


def test_paused_jobs_are_among_the_active_ones():
    jobs = [BulkJobFactory(state=state) for state in (J.PENDING, J.RUNNING, J.PAUSED, J.DONE, J.CANCELLED)]
    assert bulk_jobs_active() == jobs[:3]

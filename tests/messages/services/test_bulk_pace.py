"""Throttled bulk jobs: the rate a job is given, its chunks, its sleeps, and the rate it keeps to on the clock."""

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from messages.filtersets import message_filter_queryset
from messages.models import BULK_RATE_MAX, BulkJob, BulkJobState, Message, MessageState
from messages.selectors.bulk import bulk_job_progress
from messages.services import bulk as services_bulk
from messages.services.bulk import BulkRefused, bulk_action_start, bulk_job_execute, bulk_rate_check
from messages.services.bulk_pace import PACE_NAP_MAX, Pace
from syncadmin.models import AuditEntry
from tests.factories import BulkJobFactory, DeadLetterFactory

S = MessageState
J = BulkJobState


class FakeClock:
    def __init__(self):
        self.now = 100.0
        self.naps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.naps.append(seconds)
        self.now += seconds


def start(**kwargs):
    return bulk_action_start(message_filter=message_filter_queryset, actor="user:ops", **kwargs)


# --- the pace, on a fake clock -------------------------------------------------------------------


def test_no_rate_means_full_chunks_and_no_sleep():
    clock = FakeClock()
    pace = Pace(None, clock=clock, sleep=clock.sleep)
    assert pace.chunk(1000) == 1000
    pace.wait(1000)
    assert clock.naps == []


def test_a_chunk_is_one_second_of_the_rate_at_most_the_normal_chunk():
    assert Pace(20).chunk(1000) == 20
    assert Pace(5000).chunk(1000) == 1000


def test_each_chunk_waits_out_its_time_after_it_is_applied():
    clock = FakeClock()
    pace = Pace(20, clock=clock, sleep=clock.sleep)
    for _ in range(3):
        clock.now += 0.25  # the chunk's own work
        pace.wait(20)
    assert clock.naps == pytest.approx([0.75, 0.75, 0.75])
    assert clock.now - 100.0 == pytest.approx(3.0)  # 60 messages at 20/s: 3 s, the last chunk's second included


def test_a_slow_chunk_is_not_made_up_for_by_sleeping_less_than_nothing():
    clock = FakeClock()
    pace = Pace(10, clock=clock, sleep=clock.sleep)
    clock.now += 1.5  # slower than the rate
    pace.wait(10)
    assert clock.naps == []


@given(rate=st.integers(1, BULK_RATE_MAX), work=st.lists(st.floats(0, 2), min_size=1, max_size=30))
def test_the_pace_never_goes_faster_than_the_rate_and_never_naps_long(rate, work):
    clock = FakeClock()
    pace = Pace(rate, clock=clock, sleep=clock.sleep)
    size = pace.chunk(1000)
    for seconds in work:
        clock.now += seconds
        pace.wait(size)
    assert pace.sent / (clock.now - 100.0) <= rate * (1 + 1e-9)
    assert all(0 < nap <= PACE_NAP_MAX for nap in clock.naps)


# --- the rate a job is given -----------------------------------------------------------------------


@pytest.mark.parametrize("bad", [0, -1, BULK_RATE_MAX + 1, True, 2.5, "20"])
def test_a_rate_out_of_bounds_or_not_a_whole_number_is_refused(bad):
    with pytest.raises(BulkRefused, match="whole number of messages per second from 1 to 10,000"):
        bulk_rate_check(bad)


@pytest.mark.django_db
def test_a_bad_rate_starts_nothing(enqueued):
    DeadLetterFactory.create_batch(3)
    with pytest.raises(BulkRefused):
        start(action="retry", params={"scope": "filter", "query": "state=DeadLettered"}, rate=0)
    assert not BulkJob.objects.exists() and Message.objects.filter(state=S.DEAD_LETTERED).count() == 3
    assert not AuditEntry.objects.exists()


@pytest.mark.django_db
def test_more_than_one_second_of_the_rate_becomes_a_throttled_job(enqueued, settings):
    settings.CONSOLE_BULK_JOB_THRESHOLD = 1000
    DeadLetterFactory.create_batch(5)
    outcome = start(action="retry", params={"scope": "filter", "query": "state=DeadLettered"}, rate=4)
    assert outcome.job is not None and outcome.job.rate == 4
    assert Message.objects.filter(state=S.DEAD_LETTERED).count() == 5  # not in the request


@pytest.mark.django_db
def test_within_one_second_of_the_rate_it_runs_at_once(enqueued, settings):
    settings.CONSOLE_BULK_JOB_THRESHOLD = 1000
    DeadLetterFactory.create_batch(5)
    outcome = start(action="retry", params={"scope": "filter", "query": "state=DeadLettered"}, rate=5)
    assert (outcome.job, outcome.changed) == (None, 5)


# --- on the clock, on both databases ---------------------------------------------------------------


@pytest.mark.django_db
def test_a_throttled_job_keeps_to_its_rate_over_the_whole_job(enqueued, settings, monkeypatch):
    """60 messages at 20/s take 3 s (at least 2.5 s with any tolerance); unthrottled they take a fraction of one."""
    settings.CONSOLE_BULK_JOB_CHUNK = 1000
    DeadLetterFactory.create_batch(60)
    chunks = []
    real = services_bulk._apply_action
    monkeypatch.setattr(
        services_bulk, "_apply_action", lambda action, ids, *a: chunks.append(len(ids)) or real(action, ids, *a)
    )
    job = BulkJobFactory(rate=20)
    began = time.monotonic()
    job = bulk_job_execute(job_id=job.pk, message_filter=message_filter_queryset, max_seconds=60)
    took = time.monotonic() - began
    assert (job.state, job.done, job.changed) == (J.DONE, 60, 60)
    assert chunks == [20, 20, 20]
    assert 2.5 <= took < 15, took
    progress = bulk_job_progress(job=job)
    assert progress.rate <= 20 * 1.05 and progress.limit == 20
    assert AuditEntry.objects.get(action="message.retry").detail["rate"] == 20


@pytest.mark.django_db
def test_a_throttled_task_hands_the_job_over_after_its_slice(enqueued, settings, monkeypatch):
    """A throttled task holds its worker slot for one slice at most, then a new task (new token) carries on."""
    settings.CONSOLE_BULK_JOB_CHUNK = 1000
    monkeypatch.setattr(services_bulk, "THROTTLED_SLICE_SECONDS", 1.5)
    DeadLetterFactory.create_batch(40)
    job = BulkJobFactory(rate=10)
    job = bulk_job_execute(job_id=job.pk, message_filter=message_filter_queryset, max_seconds=60)
    assert (job.state, job.done) == (J.RUNNING, 20)  # chunks at 0 s and 1 s; at 2 s its slice was over
    assert enqueued == [(job.pk, job.runner)]
    job = bulk_job_execute(job_id=job.pk, token=job.runner, message_filter=message_filter_queryset, max_seconds=60)
    assert (job.state, job.done, job.changed) == (J.RUNNING, 40, 40)
    job = bulk_job_execute(job_id=job.pk, token=enqueued[-1][1], message_filter=message_filter_queryset)
    assert job.state == J.DONE and Message.objects.filter(state=S.RECEIVED).count() == 40

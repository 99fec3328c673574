"""A pause that lands while a bulk job's chunk is in flight, on real PostgreSQL with two connections.

The chunk has changed its messages but not yet committed its progress when the operator pauses:
the pause commits at once (it voids the runner token), the chunk's progress finds another token,
and the whole chunk rolls back. On resume the job redoes it: every message is retried exactly once.
"""

import threading

import pytest
from django.db import connection

from messages.filtersets import message_filter_queryset
from messages.models import BulkJob, BulkJobState, Message, MessageEvent, MessageState
from messages.services import bulk as services_bulk
from messages.services.bulk import bulk_job_execute
from messages.services.bulk_control import bulk_job_pause, bulk_job_resume
from tests.factories import BulkJobFactory, DeadLetterFactory

S = MessageState
J = BulkJobState
pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_a_pause_during_a_chunk_rolls_the_chunk_back_and_resume_redoes_it_once(settings, monkeypatch):
    settings.CONSOLE_BULK_JOB_CHUNK = 2
    monkeypatch.setattr(services_bulk, "bulk_job_enqueue", lambda job_id, token="": None)
    DeadLetterFactory.create_batch(6)
    job = BulkJobFactory()
    in_chunk, go, errors, calls = threading.Event(), threading.Event(), [], []
    real = services_bulk._apply_action

    def apply_then_wait(action, ids, *args):
        changed = real(action, ids, *args)
        calls.append(ids)
        if len(calls) == 2:  # the second chunk: its messages changed, its progress not yet written
            in_chunk.set()
            go.wait(20)
        return changed

    monkeypatch.setattr(services_bulk, "_apply_action", apply_then_wait)

    def worker():
        try:
            bulk_job_execute(job_id=job.pk, message_filter=message_filter_queryset)
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=worker)
    thread.start()
    assert in_chunk.wait(20)
    paused = bulk_job_pause(job_id=job.pk, actor="user:ops", reason="store under load")  # another connection
    go.set()
    thread.join(30)
    assert not errors and not thread.is_alive()
    assert paused.state == J.PAUSED
    job = BulkJob.objects.get(pk=job.pk)
    assert (job.state, job.done, job.changed) == (J.PAUSED, 2, 2)  # the chunk in flight rolled back whole
    assert Message.objects.filter(state=S.RECEIVED).count() == 2

    monkeypatch.setattr(services_bulk, "_apply_action", real)
    job = bulk_job_resume(job_id=job.pk, actor="user:ops")
    job = bulk_job_execute(job_id=job.pk, token=job.runner, message_filter=message_filter_queryset)
    assert (job.state, job.done, job.changed) == (J.DONE, 6, 6)
    retried = MessageEvent.objects.filter(from_state=S.DEAD_LETTERED, to_state=S.RECEIVED)
    assert sorted(retried.values_list("message_id", flat=True)) == sorted(Message.objects.values_list("pk", flat=True))

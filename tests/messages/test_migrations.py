"""queue_messages 0008: the schedules stored under the tasks' old dotted paths run the moved tasks; 0009 rolled back
brings back the messages its pauses parked."""

from datetime import UTC, datetime, timedelta

import pytest
from django_q.models import Schedule

from messages.services.pauses import PARK_OFFSET
from tests.factories import MessageFactory
from tests.migrations import migrate

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("queue_messages", "0007_deadlettergroupnote_from_syncadmin")]
AFTER = [("queue_messages", "0008_schedule_task_paths")]


def test_stored_schedule_paths_are_rewritten_to_the_moved_tasks():
    migrate(BEFORE)
    try:
        Schedule.objects.all().delete()
        for name, func in [
            ("purge", "messages.tasks_scale.purge"),
            ("resume", "messages.tasks_scale.bulk_jobs_resume"),
            ("job", "messages.tasks_scale.bulk_job_run"),
            ("sweep", "messages.tasks.sweep"),  # not moved: left alone
        ]:
            Schedule.objects.create(name=name, func=func, schedule_type="I", minutes=1, repeats=-1)
    finally:
        migrate(AFTER)
    stored = dict(Schedule.objects.values_list("name", "func"))
    migrate()  # back to every app's latest: the tests after this one need the later migrations' tables
    assert stored == {
        "purge": "messages.tasks.purge",
        "resume": "messages.tasks.bulk_jobs_resume",
        "job": "messages.tasks.bulk_job_run",
        "sweep": "messages.tasks.sweep",
    }


def test_rolling_back_the_pauses_brings_every_parked_message_back(terminal):
    from_now = datetime.now(UTC) - timedelta(minutes=5)
    parked = MessageFactory(terminal=terminal, next_attempt_at=from_now + PARK_OFFSET)
    waiting = MessageFactory(terminal=terminal, next_attempt_at=from_now)
    old = migrate(AFTER)
    try:
        # Read through 0008's schema: the message table still held the state columns then.
        due = old.get_model("queue_messages", "Message").objects
        assert due.get(pk=parked.pk).next_attempt_at == from_now
        assert due.get(pk=waiting.pk).next_attempt_at == from_now
    finally:
        migrate()

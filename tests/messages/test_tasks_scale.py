"""messages/tasks_scale.py: a task queued under an old dotted path (before an upgrade) still runs."""

import pytest
from django_q.tasks import async_task, fetch

from messages.models import BulkJobState, PurgeRun
from tests.factories import BulkJobFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["messages.tasks_scale.purge", "messages.tasks.purge"])
def test_the_purge_runs_under_its_old_and_its_new_path(path):
    task_id = async_task(path, "queued before the upgrade", sync=True)  # django-q2's worker, in this process
    assert fetch(task_id).success, fetch(task_id).result
    assert PurgeRun.objects.get().trigger == "queued before the upgrade"


def test_a_bulk_job_queued_under_the_old_path_runs():
    job = BulkJobFactory()  # retry the dead letters: there are none
    task_id = async_task("messages.tasks_scale.bulk_job_run", job.pk, "", sync=True)
    assert fetch(task_id).success, fetch(task_id).result
    job.refresh_from_db()
    assert job.state == BulkJobState.DONE
    assert fetch(async_task("messages.tasks_scale.bulk_jobs_resume", sync=True)).result == 0

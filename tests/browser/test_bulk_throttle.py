"""A throttled group retry in a real browser: give it a rate, watch its progress, pause, resume, see it end.

The support-staff guide's screenshots are taken here (into var/screenshots/, as the other browser
tests; docs/img/bulk-throttle-*.png are copies of them, looked at before they were committed). No worker
cluster runs in a browser test: the test runs the job's task itself (as a worker would, with the
token the console handed it), while the page polls the job's progress.
"""

import shutil
import time

import pytest

from messages.filtersets import message_filter_queryset
from messages.models import BulkJob, BulkJobState, Message, MessageState
from messages.services.bulk import bulk_job_execute
from syncadmin.models import AuditEntry
from tests.browser.test_console import CHROMIUM, browser, finish, login, shots_dir, world  # noqa: F401
from tests.factories import DeadLetterFactory

S = MessageState
J = BulkJobState
pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.skipif(not shutil.which(CHROMIUM), reason="Debian's chromium is not installed"),
]


def shot(page, name):
    page.screenshot(path=str(shots_dir() / name), full_page=True)


def run_task(job: BulkJob, **kwargs) -> BulkJob:
    """What a worker does with the task the console enqueued: run the job with the token it was given."""
    return bulk_job_execute(job_id=job.pk, token=job.runner, message_filter=message_filter_queryset, **kwargs)


def test_throttled_group_retry_pause_resume(browser, live_server, world):  # noqa: F811
    for n in range(26):  # 30 dead letters in the "price # is negative" group in all
        DeadLetterFactory(message__terminal=world["terminals"][n % 3])
    page = login(browser, live_server, "sam")
    page.set_default_timeout(10_000)
    page.goto(f"{live_server.url}/dead-letters/")

    # 1. Retry group… with a rate of 5 messages per second.
    page.locator("#group-table tbody tr").filter(has_text="price # is negative").locator("button[value=retry]").click()
    page.wait_for_selector("#bulk-panel #bulk-rate")
    assert "retry 30 messages" in page.inner_text("#bulk-count")
    page.fill("#bulk-confirm input[name=reason]", "price list fixed at HQ")
    page.fill("#bulk-rate", "5")
    shot(page, "bulk-throttle-confirm.png")
    page.click("#bulk-confirm button[type=submit]")
    page.wait_for_selector("#bulk-panel .bulk-job")
    job = BulkJob.objects.get()
    assert job.rate == 5 and job.state == J.PENDING
    assert "throttled to 5 msg/s" in page.inner_text("#bulk-panel")

    # 2. A worker runs it for a slice: two chunks of five, a second each; the page shows rate and time left.
    job = run_task(job, max_seconds=1.5)
    assert (job.state, job.done) == (J.RUNNING, 10)
    page.wait_for_function("() => (document.getElementById('bulk-job-done') || {}).textContent === '10'")
    figures = page.inner_text("#bulk-job-figures")
    assert "10 / 30" in figures and "msg/s" in page.inner_text("#bulk-job-rate") and "left" in figures
    shot(page, "bulk-throttle-running.png")

    # 3. Pause, with a reason: the job keeps its place; nothing more is retried.
    page.fill("#bulk-panel input[name=reason]", "central store under load, wait for the night")
    page.click("#bulk-job-pause")
    page.wait_for_selector("#bulk-job-paused")
    assert "Paused by user:sam" in page.inner_text("#bulk-job-paused")
    assert BulkJob.objects.get(pk=job.pk).state == J.PAUSED
    time.sleep(1.2)  # paused for a while: the panel counts it, and the rate leaves it out
    assert run_task(job).done == 10  # the task handed over before the pause holds a void token
    assert Message.objects.filter(state=S.DEAD_LETTERED).count() == 20 + 1  # + the promo dead letter
    page.wait_for_function("() => document.getElementById('bulk-job-figures').textContent.includes('paused')")
    shot(page, "bulk-throttle-paused.png")

    # 4. Resume: a new task carries on from where it stopped, at the same pace, to the end.
    page.click("#bulk-job-resume")
    page.wait_for_function("() => document.getElementById('bulk-job-state').textContent === 'Running'")
    job = run_task(BulkJob.objects.get(pk=job.pk), max_seconds=60)
    assert (job.state, job.done, job.changed) == (J.DONE, 30, 30)
    page.wait_for_function("() => document.getElementById('bulk-job-state').textContent === 'Done'")
    page.wait_for_function("() => document.querySelectorAll('#group-table tbody tr').length === 1")  # refreshed once
    shot(page, "bulk-throttle-done.png")
    assert Message.objects.filter(state=S.RECEIVED, last_error__contains="price").count() >= 30
    assert list(AuditEntry.objects.filter(object_type="bulk_job").values_list("action", flat=True).order_by("pk")) == [
        "bulk_job.pause",
        "bulk_job.resume",
        "message.retry",
    ]
    finish(page)

"""Background bulk jobs (chunks, progress, cancel, hand-over, audit once) and restore."""

from datetime import UTC, datetime, timedelta

import pytest

from messages import tasks
from messages.filtersets import message_filter_queryset
from messages.models import BulkJob, BulkJobItem, BulkJobState, DeadLetter, Message, MessageEvent, MessageState
from messages.selectors.bulk import bulk_job_progress
from messages.services import bulk as services_bulk
from messages.services.bulk import BulkRefused, bulk_action_start, bulk_job_cancel, bulk_job_execute
from messages.services.console import message_operator_restore
from syncadmin.models import AuditEntry
from tests.factories import BulkJobFactory, DeadLetterFactory, MessageFactory, TerminalFactory

S = MessageState
J = BulkJobState
pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}
GROUP_QUERY = "state=DeadLettered&group=ValueError%3A+price+%23+is+negative"


def start(**kwargs):
    """bulk_action_start with the console's message filter, as the bulk view calls it."""
    return bulk_action_start(message_filter=message_filter_queryset, **kwargs)


def execute(**kwargs):
    """bulk_job_execute with the console's message filter, as the job's task calls it."""
    return bulk_job_execute(message_filter=message_filter_queryset, **kwargs)


def dead_letters(n, **kwargs):
    return [d.message.pk for d in DeadLetterFactory.create_batch(n, **kwargs)]


# --- restore -------------------------------------------------------------------------------------


def test_restore_moves_discarded_back_to_received_through_the_transition():
    discarded = MessageFactory(state=S.DISCARDED, attempts=5, next_attempt_at=None)
    processed = MessageFactory(state=S.PROCESSED)
    changed = services_bulk.message_restore(message_ids=[discarded.pk, processed.pk], actor="user:ta", reason="oops")
    assert changed == 1
    discarded.refresh_from_db()
    assert discarded.state == S.RECEIVED and discarded.attempts == 0 and discarded.next_attempt_at is not None
    event = MessageEvent.objects.get(message=discarded)
    assert (event.from_state, event.to_state, event.actor, event.reason) == (S.DISCARDED, S.RECEIVED, "user:ta", "oops")
    assert Message.objects.get(pk=processed.pk).state == S.PROCESSED
    assert not MessageEvent.objects.filter(message=processed).exists()


def test_operator_restore_is_audited_once():
    m = MessageFactory(state=S.DISCARDED)
    assert message_operator_restore(message_ids=[m.pk], actor="user:ta", reason="wrong till") == 1
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.object_id, entry.count, entry.reason) == ("message.restore", str(m.pk), 1, "wrong till")


# --- small selections run at once ---------------------------------------------------------------


def test_small_bulk_runs_in_the_request_and_is_audited_once(small_jobs, enqueued):
    ids = dead_letters(3)
    outcome = start(
        action="retry", params={"scope": "filter", "query": "state=DeadLettered", "filters": {"state": "DeadLettered"}},
        actor="user:s",
    )  # fmt: skip
    assert outcome.changed == 3 and outcome.job is None and not enqueued
    assert set(Message.objects.filter(pk__in=ids).values_list("state", flat=True)) == {S.RECEIVED}
    entry = AuditEntry.objects.get()
    assert entry.count == 3 and entry.detail["filters"] == {"state": "DeadLettered"}


def test_discard_needs_a_reason_before_anything_happens(small_jobs, enqueued):
    dead_letters(5)
    with pytest.raises(BulkRefused):
        start(action="discard", params={"scope": "filter", "query": ""}, actor="user:s", reason=" ")
    assert not BulkJob.objects.exists() and not AuditEntry.objects.exists()


def test_invalid_filter_is_refused(small_jobs):
    with pytest.raises(BulkRefused, match="not valid"):
        start(action="retry", params={"scope": "filter", "query": "state=Nonsense"}, actor="user:s")


# --- large selections become jobs ---------------------------------------------------------------


def test_over_the_threshold_a_job_is_queued_after_commit(small_jobs, enqueued, django_capture_on_commit_callbacks):
    dead_letters(4)
    with django_capture_on_commit_callbacks(execute=True):
        outcome = start(
            action="retry", params={"scope": "filter", "query": "state=DeadLettered"}, actor="user:s", reason="fixed"
        )
    job = outcome.job
    assert outcome.changed is None and job.state == J.PENDING
    assert enqueued == [(job.pk, "")]
    # Nothing changed in the request, nothing audited yet.
    assert Message.objects.filter(state=S.DEAD_LETTERED).count() == 4
    assert not AuditEntry.objects.exists()


def test_job_runs_in_chunks_and_audits_once_with_totals_and_filter(small_jobs, enqueued, monkeypatch):
    ids = dead_letters(5)
    other = DeadLetterFactory(group_key="KeyError: 'sku'").message.pk
    sizes = []
    real = services_bulk._apply_action
    monkeypatch.setattr(
        services_bulk, "_apply_action", lambda action, chunk, *a: sizes.append(len(chunk)) or real(action, chunk, *a)
    )
    job = BulkJobFactory(params={"scope": "filter", "query": GROUP_QUERY, "filters": {"group": "ValueError…"}})
    job = execute(job_id=job.pk)
    assert sizes == [2, 2, 1]  # CONSOLE_BULK_JOB_CHUNK = 2, in id order
    assert (job.state, job.total, job.done, job.changed, job.last_id) == (J.DONE, 5, 5, 5, max(ids))
    assert not BulkJobItem.objects.exists()  # each chunk removed its own items
    assert set(Message.objects.filter(pk__in=ids).values_list("state", flat=True)) == {S.RECEIVED}
    assert Message.objects.get(pk=other).state == S.DEAD_LETTERED  # not in the group
    assert DeadLetter.objects.filter(message_id__in=ids, resolution="retried").count() == 5
    entry = AuditEntry.objects.get()  # once, at the end
    assert entry.action == "message.retry" and entry.object_type == "bulk_job" and entry.count == 5
    assert entry.detail["state"] == J.DONE and entry.detail["total"] == 5 and entry.detail["query"] == GROUP_QUERY
    assert entry.detail["filters"] == {"group": "ValueError…"}
    progress = bulk_job_progress(job=job)
    assert progress.percent == 100.0 and progress.eta_seconds is None


def test_each_chunk_is_its_own_transaction(small_jobs, enqueued, monkeypatch):
    ids = dead_letters(5)
    calls = []
    real = services_bulk._apply_action

    def failing_third(action, chunk, *a):
        calls.append(chunk)
        changed = real(action, chunk, *a)
        if len(calls) == 3:
            raise RuntimeError("database went away")
        return changed

    monkeypatch.setattr(services_bulk, "_apply_action", failing_third)
    job = execute(job_id=BulkJobFactory().pk)
    assert job.state == J.FAILED and "database went away" in job.error
    # The two committed chunks stay; the failed third one rolled back completely.
    assert job.done == 4 and job.changed == 4
    assert Message.objects.filter(pk__in=ids, state=S.RECEIVED).count() == 4
    assert Message.objects.get(pk=max(ids)).state == S.DEAD_LETTERED
    assert not MessageEvent.objects.filter(message_id=max(ids)).exists()
    assert not BulkJobItem.objects.exists()  # an ended job leaves no items behind
    entry = AuditEntry.objects.get()
    assert entry.detail["state"] == J.FAILED and entry.count == 4


def test_the_filter_runs_once_not_per_chunk(small_jobs, enqueued, django_assert_max_num_queries):
    dead_letters(3, message__last_error="ValueError: price 12 is negative")
    job = BulkJobFactory(params={"scope": "filter", "query": "error=price", "filters": {"error": "price"}})
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as ctx:
        job = execute(job_id=job.pk)
    assert job.changed == 3
    scans = [q["sql"] for q in ctx.captured_queries if "LIKE" in q["sql"].upper()]
    assert len(scans) == 1 and scans[0].upper().startswith("INSERT")  # the one snapshot


def test_selection_is_frozen_when_the_job_starts(small_jobs, enqueued, monkeypatch):
    dead_letters(3)
    real = services_bulk._apply_action

    def arrive_midway(action, chunk, *a):
        DeadLetterFactory()  # a new dead letter arrives while the job runs
        return real(action, chunk, *a)

    monkeypatch.setattr(services_bulk, "_apply_action", arrive_midway)
    job = execute(job_id=BulkJobFactory().pk)
    assert (job.total, job.changed) == (3, 3)
    assert Message.objects.filter(state=S.DEAD_LETTERED).count() == 2  # the newcomers are left alone


def test_discard_and_restore_jobs(small_jobs, enqueued):
    ids = dead_letters(4)
    job = BulkJobFactory(action="discard", reason="terminal wiped")
    assert execute(job_id=job.pk).changed == 4
    assert set(Message.objects.filter(pk__in=ids).values_list("state", flat=True)) == {S.DISCARDED}
    restore = BulkJobFactory(action="restore", params={"scope": "filter", "query": "state=Discarded"})
    assert execute(job_id=restore.pk).changed == 4
    assert set(Message.objects.filter(pk__in=ids).values_list("state", flat=True)) == {S.RECEIVED}
    assert [e.action for e in AuditEntry.objects.order_by("pk")] == ["message.discard", "message.restore"]


def test_selected_scope_job(small_jobs, enqueued):
    ids = dead_letters(4)
    done = MessageFactory(state=S.PROCESSED).pk
    job = BulkJobFactory(params={"scope": "selected", "ids": [*ids, done]})
    job = execute(job_id=job.pk)
    assert (job.state, job.total, job.done, job.changed) == (J.DONE, 4, 4, 4)  # the frozen selection: actionable only
    assert Message.objects.get(pk=done).state == S.PROCESSED


# --- cancel, hand-over, stale tasks ---------------------------------------------------------------


def test_cancel_a_pending_job_ends_it_and_audits_once(small_jobs, enqueued):
    dead_letters(4)
    job = bulk_job_cancel(job_id=BulkJobFactory().pk, actor="user:boss")
    assert job.state == J.CANCELLED and job.cancelled_by == "user:boss"
    # A task arriving afterwards does nothing.
    assert execute(job_id=job.pk).state == J.CANCELLED
    assert Message.objects.filter(state=S.DEAD_LETTERED).count() == 4
    entry = AuditEntry.objects.get()
    assert entry.detail["state"] == J.CANCELLED and entry.detail["cancelled_by"] == "user:boss"
    with pytest.raises(BulkRefused, match="already ended"):
        bulk_job_cancel(job_id=job.pk, actor="user:boss")


def test_cancel_a_running_job_stops_it_between_chunks(small_jobs, enqueued, monkeypatch):
    dead_letters(5)
    job = BulkJobFactory()
    real = services_bulk._apply_action

    def cancel_after_first(action, chunk, *a):
        changed = real(action, chunk, *a)
        BulkJob.objects.filter(pk=job.pk).update(cancel_requested=True, cancelled_by="user:boss")
        return changed

    monkeypatch.setattr(services_bulk, "_apply_action", cancel_after_first)
    job = execute(job_id=job.pk)
    assert (job.state, job.done, job.changed) == (J.CANCELLED, 2, 2)
    assert Message.objects.filter(state=S.DEAD_LETTERED).count() == 3
    assert AuditEntry.objects.get().detail["state"] == J.CANCELLED


def test_out_of_time_hands_over_to_a_new_task_and_stale_tasks_do_nothing(small_jobs, enqueued):
    dead_letters(5)
    job = BulkJobFactory()
    job = execute(job_id=job.pk, max_seconds=0)  # counts the selection, then hands over
    assert job.state == J.RUNNING and job.total == 5 and job.done == 0
    assert len(enqueued) == 1 and enqueued[0][1] == job.runner != ""
    # The original task redelivered (old token): nothing happens.
    assert execute(job_id=job.pk, token="").done == 0
    job = execute(job_id=job.pk, token=enqueued[0][1])
    assert (job.state, job.changed) == (J.DONE, 5)
    assert AuditEntry.objects.count() == 1


def test_stalled_jobs_are_resumed(small_jobs, enqueued):
    dead_letters(3)
    old = datetime.now(UTC) - timedelta(minutes=10)
    lost = BulkJobFactory(created_at=old)  # its enqueue never reached the broker
    dead = BulkJobFactory(created_at=old, state=J.RUNNING, runner="gone", heartbeat_at=old)  # worker killed
    fresh = BulkJobFactory()  # just created: its task is on the way
    finished = BulkJobFactory(created_at=old, state=J.DONE)
    assert tasks.bulk_jobs_resume() == 2
    assert {pk for pk, _ in enqueued} == {lost.pk, dead.pk}
    tokens = dict(enqueued)
    assert BulkJob.objects.get(pk=dead.pk).runner == tokens[dead.pk] != "gone"
    assert fresh.pk not in tokens and finished.pk not in tokens
    assert execute(job_id=dead.pk, token="gone").done == 0  # the dead worker's token is void


def test_task_wrapper_runs_the_job(small_jobs, enqueued):
    dead_letters(4)
    assert tasks.bulk_job_run(BulkJobFactory().pk) == J.DONE


# --- console ------------------------------------------------------------------------------------


def test_console_confirm_says_background_then_starts_a_job(login_as, small_jobs, enqueued):
    dead_letters(4)
    client = login_as("Support")
    data = {"action": "retry", "scope": "filter", "query": "state=DeadLettered"}
    confirm = client.post("/messages/bulk/", data, **HX)
    assert confirm.context["count"] == 4 and confirm.context["background"]
    assert b"background job" in confirm.content
    response = client.post("/messages/bulk/", {**data, "confirmed": "1", "reason": "fixed"}, **HX)
    job = BulkJob.objects.get()
    assert response.status_code == 200
    assert f'id="bulk-job-{job.pk}"'.encode() in response.content
    assert b'hx-trigger="every 1s"' in response.content  # polls itself
    assert job.actor == "user:support" and job.params["filters"] == {"state": "DeadLettered"}
    assert Message.objects.filter(state=S.DEAD_LETTERED).count() == 4  # the request did not do the work


def test_progress_partial_polls_until_finished(login_as, small_jobs, enqueued):
    dead_letters(4)
    job = BulkJobFactory()
    client = login_as("Viewers")
    pending = client.get(f"/bulk-jobs/{job.pk}/", **HX)
    assert pending.status_code == 200 and b"<html" not in pending.content
    assert b'hx-trigger="every 1s"' in pending.content and b"counting the selection" in pending.content
    BulkJob.objects.filter(pk=job.pk).update(
        state=J.RUNNING, total=4, done=2, changed=2, started_at=datetime.now(UTC) - timedelta(seconds=2)
    )
    running = client.get(f"/bulk-jobs/{job.pk}/", **HX)
    assert b'id="bulk-job-done">2<' in running.content and b'id="bulk-job-total">4<' in running.content
    assert b"msg/s" in running.content and b"s left" in running.content
    assert running.context["progress"].percent == 50.0
    assert b"Cancel job" not in running.content  # a Viewer may not
    execute(job_id=job.pk, token="")  # (job row has no runner: the token "" matches)
    done = client.get(f"/bulk-jobs/{job.pk}/", **HX)
    assert b"every 1s" not in done.content and b"Done" in done.content
    assert done["HX-Trigger"] == "messagesChanged"
    full = client.get(f"/bulk-jobs/{job.pk}/")
    assert b"<html" in full.content and b"Bulk job #" in full.content


def test_cancel_view_permissions_and_csrf(login_as, small_jobs, enqueued):
    job = BulkJobFactory(action="discard")
    viewer = login_as("Viewers")
    assert viewer.post(f"/bulk-jobs/{job.pk}/cancel/", **HX).status_code == 403
    assert BulkJob.objects.get(pk=job.pk).state == J.PENDING
    support = login_as("Support")
    page = support.get(f"/bulk-jobs/{job.pk}/", **HX)
    assert b"Cancel job" in page.content
    response = support.post(f"/bulk-jobs/{job.pk}/cancel/", **HX)
    assert response.status_code == 200 and BulkJob.objects.get(pk=job.pk).state == J.CANCELLED
    again = support.post(f"/bulk-jobs/{job.pk}/cancel/", **HX)
    assert again.status_code == 409 and b"already ended" in again.content
    assert AuditEntry.objects.filter(object_type="bulk_job").count() == 1


def test_cancel_refused_without_csrf_token(db, small_jobs):
    from django.test import Client

    from tests.factories import UserFactory

    job = BulkJobFactory()
    client = Client(enforce_csrf_checks=True)
    client.force_login(UserFactory(username="s", group="Support"))
    assert client.post(f"/bulk-jobs/{job.pk}/cancel/").status_code == 403
    assert BulkJob.objects.get(pk=job.pk).state == J.PENDING


def test_restore_is_for_terminal_admins_only(login_as):
    m = MessageFactory(state=S.DISCARDED)
    support = login_as("Support")
    page = support.get(f"/messages/{m.pk}/")
    assert b"restore-button" not in page.content and b"Only Terminal admins" in page.content
    assert support.post(f"/messages/{m.pk}/restore/", {"reason": "x"}).status_code == 403
    bulk = support.post("/messages/bulk/", {"action": "restore", "select": [m.pk], "confirmed": "1"}, **HX)
    assert bulk.status_code == 403
    assert Message.objects.get(pk=m.pk).state == S.DISCARDED
    admin = login_as("Terminal admins")
    assert b"restore-button" in admin.get(f"/messages/{m.pk}/").content
    response = admin.post(f"/messages/{m.pk}/restore/", {"reason": "discarded by mistake"}, **HX)
    assert response.status_code == 200 and b"Restored" in response.content
    assert Message.objects.get(pk=m.pk).state == S.RECEIVED
    entry = AuditEntry.objects.get(action="message.restore")
    assert entry.object_id == str(m.pk) and entry.reason == "discarded by mistake"


def test_bulk_restore_of_a_selection(login_as):
    t = TerminalFactory(code="R1")
    ms = MessageFactory.create_batch(3, state=S.DISCARDED, terminal=t)
    client = login_as("Terminal admins")
    data = {"action": "restore", "select": [m.pk for m in ms]}
    assert client.post("/messages/bulk/", data, **HX).context["count"] == 3
    result = client.post("/messages/bulk/", {**data, "confirmed": "1"}, **HX)
    assert result.context["done"] == 3 and b"Restored 3" in result.content
    assert AuditEntry.objects.get(action="message.restore").count == 3


def test_job_pages_need_login_and_permission(client, login_as):
    job = BulkJobFactory()
    for url in ("/bulk-jobs/", f"/bulk-jobs/{job.pk}/", "/retention/"):
        assert client.get(url).status_code == 302
    nobody = login_as(None)
    for url in ("/bulk-jobs/", f"/bulk-jobs/{job.pk}/", "/retention/"):
        assert nobody.get(url).status_code == 403
    assert nobody.post(f"/bulk-jobs/{job.pk}/cancel/").status_code == 403
    viewer = login_as("Viewers")
    listing = viewer.get("/bulk-jobs/")
    assert listing.status_code == 200 and f"#{job.pk}".encode() in listing.content

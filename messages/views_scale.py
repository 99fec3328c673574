"""Console pages for background bulk jobs (progress, cancel), restore, and retention runs.

Thin: they authorise, call messages.services.bulk / selectors_scale, and render.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from messages import selectors_scale
from messages.forms import RestoreForm
from messages.models import BulkJob, Message
from messages.services.bulk import ACTION_PERMS, BulkRefused, bulk_job_cancel
from messages.services.console import message_operator_restore
from messages.tables_scale import BulkJobTable, PurgeRunTable
from syncadmin.console import actor_of, console_view, render_list, wants_fragment
from syncadmin.pagination import keyset_page

VIEW_JOBS = "queue_messages.view_bulkjob"
VIEW_PURGES = "queue_messages.view_purgerun"
RESTORE = "queue_messages.restore_message"


def _job_context(request, job: BulkJob, **extra) -> dict:
    return {
        "job": job,
        "progress": selectors_scale.bulk_job_progress(job=job),
        "can_cancel": not job.finished and request.user.has_perm(ACTION_PERMS[job.action]),
        **extra,
    }


def bulk_job_panel(request, job: BulkJob, status: int = 200, **extra):
    """The progress panel: polls itself every second (hx-trigger) until the job has ended."""
    response = render(request, "messages/_bulk_job.html", _job_context(request, job, **extra), status=status)
    if job.finished:
        response["HX-Trigger"] = "messagesChanged"  # refresh the table under it once, at the end
    return response


@require_GET
@console_view(VIEW_JOBS)
def bulk_job_detail(request, pk: int):
    job = get_object_or_404(BulkJob, pk=pk)
    if wants_fragment(request):
        return bulk_job_panel(request, job)
    return render(request, "messages/bulk_job_detail.html", _job_context(request, job))


@require_POST
@console_view(VIEW_JOBS)
def bulk_job_cancel_view(request, pk: int):
    job = get_object_or_404(BulkJob, pk=pk)
    # Whoever may run this action may stop it; the check is here, whatever the page showed.
    if not request.user.has_perm(ACTION_PERMS[job.action]):
        raise PermissionDenied(f"you may not {job.action} messages")
    try:
        job = bulk_job_cancel(job_id=job.pk, actor=actor_of(request))
    except BulkRefused as exc:
        return bulk_job_panel(request, job, status=409, flash=str(exc))
    return bulk_job_panel(request, job)


@require_GET
@console_view(VIEW_JOBS)
def bulk_job_list(request):
    page = keyset_page(
        selectors_scale.bulk_job_list_queryset(),
        sort=None,
        allowed={"created_at": "created_at"},
        default="-created_at",
        per_page=settings.CONSOLE_PAGE_SIZE,
        after=request.GET.get("after"),
        before=request.GET.get("before"),
    )
    context = {
        "table": BulkJobTable(page.rows, orderable=False),
        "page": page,
        "active": selectors_scale.bulk_jobs_active(),
        "threshold": settings.CONSOLE_BULK_JOB_THRESHOLD,
        "chunk": settings.CONSOLE_BULK_JOB_CHUNK,
    }
    return render_list(request, "messages/bulk_job_list.html", context)


# --- restore -----------------------------------------------------------------------------------


@never_cache  # answers with the message's page or body, payload included
@require_POST
@console_view("queue_messages.view_message", RESTORE)
def message_restore_view(request, pk: int):
    from messages.views import _after_action  # the detail page's own re-render

    message = get_object_or_404(Message, pk=pk)
    form = RestoreForm(request.POST)
    if not form.is_valid():
        return _after_action(
            request, pk, status=400, flash="The reason is not valid: " + form.errors.as_text(), flash_level="err"
        )
    reason = form.cleaned_data["reason"].strip()
    changed = message_operator_restore(message_ids=[message.pk], actor=actor_of(request), reason=reason)
    flash = "Restored: the message is queued again." if changed else f"Nothing changed: the message is {message.state}."
    return _after_action(request, pk, flash=flash, flash_level="ok" if changed else "warn")


# --- retention ---------------------------------------------------------------------------------


@require_GET
@console_view(VIEW_PURGES)
def retention(request):
    page = keyset_page(
        selectors_scale.purge_run_list_queryset(),
        sort=None,
        allowed={"started_at": "started_at"},
        default="-started_at",
        per_page=settings.CONSOLE_PAGE_SIZE,
        after=request.GET.get("after"),
        before=request.GET.get("before"),
    )
    context = {
        "table": PurgeRunTable(page.rows, orderable=False),
        "page": page,
        "retention_days": settings.SYNC_RETENTION_DAYS,
        "deadletter_days": settings.SYNC_DEADLETTER_RETENTION_DAYS,
        "batch": settings.SYNC_RETENTION_BATCH,
        "interval": settings.SYNC_RETENTION_INTERVAL_MINUTES,
        "last_day": selectors_scale.purge_totals(since=timezone.now() - timedelta(days=1)),
    }
    return render_list(request, "messages/retention.html", context)

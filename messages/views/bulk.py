"""Bulk actions on the message list, and the background bulk jobs they become (progress, pause, resume,
cancel, list).

Thin: they authorise, call messages.services.bulk and the selectors, and render.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import QueryDict
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET, require_POST

from messages.filtersets import message_filter_queryset, message_filterset
from messages.forms import BulkActionForm, BulkJobHoldForm
from messages.models import ACTION_PERMS, VIEW_PERM, BulkJob, BulkJobState
from messages.selectors import bulk as bulk_selectors
from messages.services.bulk import BulkRefused, actionable, bulk_action_start, bulk_job_cancel, job_queryset
from messages.services.bulk_control import bulk_job_pause, bulk_job_resume
from messages.tables import BulkJobTable
from syncadmin.lib.console import actor_of, console_view, wants_fragment
from syncadmin.lib.listing import Keyset, ListPage

VIEW_JOBS = "queue_messages.view_bulkjob"


@require_POST
@console_view(VIEW_PERM)
def message_bulk(request):
    """Two steps: without ``confirmed`` say how many messages will change; with it, do it.

    Up to CONSOLE_BULK_JOB_THRESHOLD messages change in this request; more become a background
    job whose progress panel (polled through htmx) is the answer, so the request never waits on it.
    """
    form = BulkActionForm(request.POST)
    if not form.is_valid():
        return render(request, "messages/_bulk_panel.html", {"form": form, "errors": form.errors})
    data = form.cleaned_data
    action, scope = data["action"], data["scope"]
    if not request.user.has_perm(ACTION_PERMS[action]):
        raise PermissionDenied(f"you may not {action} messages")
    if scope == "filter":
        fs = message_filterset(QueryDict(data["query"]))
        if not fs.is_valid():
            return render(request, "messages/_bulk_panel.html", {"form": form, "errors": fs.errors})
        params = {"scope": "filter", "query": data["query"], "filters": fs.active}
    else:
        params = {"scope": "selected", "ids": sorted(set(data["select"]))}
    threshold = settings.CONSOLE_BULK_JOB_THRESHOLD
    context = {
        "form": form,
        "action": action,
        "scope": scope,
        "selected": data["select"],
        "query": data["query"],
        "filters": params.get("filters", {}),
        "reason": data.get("reason", ""),
        "rate": data.get("rate"),
        "threshold": threshold,
    }
    if not data.get("confirmed"):
        queryset = job_queryset(params=params, message_filter=message_filter_queryset)
        context["count"] = actionable(queryset=queryset, action=action).count()
        context["background"] = context["count"] > min(threshold, data.get("rate") or threshold)
        return render(request, "messages/_bulk_panel.html", context)
    try:
        outcome = bulk_action_start(
            action=action,
            params=params,
            actor=actor_of(request),
            reason=(data.get("reason") or "").strip(),
            rate=data.get("rate"),
            message_filter=message_filter_queryset,
        )
    except BulkRefused as exc:
        context["errors"] = {"": [str(exc)]}
        return render(request, "messages/_bulk_panel.html", context)
    if outcome.job is not None:
        return bulk_job_panel(request, outcome.job)
    context["done"] = outcome.changed
    response = render(request, "messages/_bulk_panel.html", context)
    response["HX-Trigger"] = "messagesChanged"
    return response


def _job_context(request, job: BulkJob, **extra) -> dict:
    may_control = not job.finished and request.user.has_perm(ACTION_PERMS[job.action])
    return {
        "job": job,
        "progress": bulk_selectors.bulk_job_progress(job=job),
        "can_cancel": may_control,
        "can_pause": may_control and not job.cancel_requested and job.state != BulkJobState.PAUSED,
        "can_resume": may_control and job.state == BulkJobState.PAUSED,
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


def _cancel(*, job_id: int, actor: str, reason: str = "") -> BulkJob:
    # The cancel is audited once, with the job's end (who cancelled it is on the job).
    return bulk_job_cancel(job_id=job_id, actor=actor)


def _job_control(request, pk: int, act):
    """Cancel, pause or resume (``act(job_id=, actor=, **form)``) and answer with the progress panel."""
    job = get_object_or_404(BulkJob, pk=pk)
    # Whoever may run this action may stop, pause or resume it; the check is here, whatever the page showed.
    if not request.user.has_perm(ACTION_PERMS[job.action]):
        raise PermissionDenied(f"you may not {job.action} messages")
    form = BulkJobHoldForm(request.POST)
    if not form.is_valid():
        return bulk_job_panel(request, job, status=400, flash=" ".join(e for es in form.errors.values() for e in es))
    try:
        job = act(job_id=job.pk, actor=actor_of(request), **form.cleaned_data)
    except BulkRefused as exc:
        job.refresh_from_db()
        return bulk_job_panel(request, job, status=409, flash=str(exc))
    return bulk_job_panel(request, job)


@require_POST
@console_view(VIEW_JOBS)
def bulk_job_cancel_view(request, pk: int):
    return _job_control(request, pk, _cancel)


@require_POST
@console_view(VIEW_JOBS)
def bulk_job_pause_view(request, pk: int):
    return _job_control(request, pk, bulk_job_pause)


@require_POST
@console_view(VIEW_JOBS)
def bulk_job_resume_view(request, pk: int):
    return _job_control(request, pk, bulk_job_resume)


@require_GET
@console_view(VIEW_JOBS)
def bulk_job_list(request):
    jobs = bulk_selectors.bulk_job_list_queryset()
    listing = ListPage(request, table=BulkJobTable, rows=jobs, keyset=Keyset.newest_first("created_at"))
    context = {
        "active": bulk_selectors.bulk_jobs_active(),
        "threshold": settings.CONSOLE_BULK_JOB_THRESHOLD,
        "chunk": settings.CONSOLE_BULK_JOB_CHUNK,
    }
    return listing.render("messages/bulk_job_list.html", context)

"""Console pages for messages and dead letters: thin views over the selectors and services."""

from __future__ import annotations

import json
from urllib.parse import urlencode

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from messages import selectors
from messages.filtersets import MessageFilterSet
from messages.forms import BulkActionForm, DiscardForm, EditPayloadForm, GroupNoteForm, RetryForm
from messages.models import DeadLetter, Message, MessageState
from messages.services.bulk import BulkRefused, actionable, bulk_action_start, job_queryset
from messages.services.console import (
    ActionRefused,
    message_edit_and_retry,
    message_operator_discard,
    message_operator_retry,
)
from messages.tables import DeadLetterGroupTable, MessageTable
from messages.views_scale import bulk_job_panel
from syncadmin.console import actor_of, bind_table_context, console_view, render_list, wants_fragment
from syncadmin.exports import csv_response
from syncadmin.jsontext import json_parse
from syncadmin.pagination import keyset_page
from syncadmin.selectors import deadletter_group_notes
from syncadmin.services import deadletter_group_note_set

VIEW = "queue_messages.view_message"
ACTION_PERMS = {
    "retry": "queue_messages.retry_message",
    "discard": "queue_messages.discard_message",
    "restore": "queue_messages.restore_message",
}


def _filterset(data) -> MessageFilterSet:
    return MessageFilterSet(data, queryset=selectors.message_list_queryset())


def _filter_query(request) -> str:
    """The active filters as a query string (no cursor, no sort): what "all matching" means."""
    q = request.GET.copy()
    for key in ("after", "before", "sort"):
        q.pop(key, None)
    return q.urlencode()


# --- list -------------------------------------------------------------------------------------


@require_GET
@console_view(VIEW)
def message_list(request):
    fs = _filterset(request.GET)
    # An invalid filter shows nothing (not everything) and says why; the operator's input stays on screen.
    page = keyset_page(
        fs.selected,
        sort=request.GET.get("sort"),
        allowed=selectors.MESSAGE_SORTS,
        default="-received_at",
        per_page=settings.CONSOLE_PAGE_SIZE,
        after=request.GET.get("after"),
        before=request.GET.get("before"),
    )
    table = MessageTable(page.rows, orderable=False)
    context = {
        "filter": fs,
        "table": table,
        "page": page,
        "notice": "; ".join(n for n in (fs.notice, page.notice) if n),
        "filter_query": _filter_query(request),
        "list_url": request.path,
        "bulk": True,
        "row_template": "messages/_message_rows.html",
        "state_choices": MessageState.choices,
        "terminal_codes": [] if request.htmx else selectors.terminal_codes(),
        "refresh_event": "messagesChanged",
        "count_url": reverse("message-count") + "?" + _filter_query(request),
        "export_url": reverse("message-export") + "?" + _filter_query(request),
    }
    return render_list(request, "messages/message_list.html", context)


@require_GET
@console_view(VIEW)
def message_count(request):
    """How many messages match, counted up to a cap (loaded lazily so the table never waits)."""
    fs = _filterset(request.GET)
    if not fs.is_valid():
        return HttpResponse("filters not valid")
    cap = 10_000
    n, more = selectors.message_count_capped(queryset=fs.qs, cap=cap)
    text = f"more than {cap:,} match" if more else f"{n:,} match" if n != 1 else "1 matches"
    return HttpResponse(text)


@never_cache  # the messages' keys and errors, as a file: never stored by a browser or a proxy
@require_GET
@console_view(VIEW)
def message_export(request):
    """The filtered list as CSV, streamed row by row: a million rows never sit in memory."""
    fs = _filterset(request.GET)
    if not fs.is_valid():
        return HttpResponse("Invalid filters: " + fs.errors.as_text(), status=400, content_type="text/plain")
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    return csv_response(
        header=[name for name, _ in selectors.MESSAGE_EXPORT_COLUMNS],
        rows=selectors.message_export_rows(queryset=fs.qs),
        filename=f"messages-{stamp}.csv",
    )


# --- bulk actions -----------------------------------------------------------------------------


@require_POST
@console_view(VIEW)
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
        fs = _filterset(QueryDict(data["query"]))
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
        "threshold": threshold,
    }
    if not data.get("confirmed"):
        context["count"] = actionable(queryset=job_queryset(params=params), action=action).count()
        context["background"] = context["count"] > threshold
        return render(request, "messages/_bulk_panel.html", context)
    try:
        outcome = bulk_action_start(
            action=action, params=params, actor=actor_of(request), reason=(data.get("reason") or "").strip()
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


# --- detail ---------------------------------------------------------------------------------


def _pretty(payload: str) -> tuple[str, bool]:
    try:
        return json.dumps(json_parse(payload), indent=2, ensure_ascii=False, sort_keys=False), True
    except ValueError:  # not JSON (or nested deeper than the parser goes): shown as stored
        return payload, False


def _detail_context(request, message: Message, **extra) -> dict:
    events = selectors.message_lifecycle(message_id=message.pk)
    payload, payload_ok = _pretty(message.payload)
    dead_letter = DeadLetter.objects.filter(message=message).first()
    return {
        "message": message,
        "events": events,
        "attempts": [e for e in events if e.error_class or e.traceback],
        "payload": payload,
        "payload_ok": payload_ok,
        "history": selectors.message_entity_history(message=message, limit=20),
        "dead_letter": dead_letter,
        "outlook": selectors.message_retry_outlook(message=message)
        if message.state in (MessageState.FAILED, MessageState.DEAD_LETTERED)
        else None,
        "retry_form": extra.pop("retry_form", None) or RetryForm(),
        "discard_form": extra.pop("discard_form", None) or DiscardForm(),
        "can_retry_state": message.state in (MessageState.FAILED, MessageState.DEAD_LETTERED),
        "can_discard_state": message.state in (MessageState.RECEIVED, MessageState.FAILED, MessageState.DEAD_LETTERED),
        "can_restore_state": message.state == MessageState.DISCARDED,
        **extra,
    }


def _load(pk: int) -> Message:
    return get_object_or_404(Message.objects.select_related("terminal"), pk=pk)


# Pages and fragments that show a payload are never stored by a browser or a proxy (no-store):
# the detail, its in-place action answers, the edit page, the CSV export.
@never_cache
@require_GET
@console_view(VIEW)
def message_detail(request, pk: int):
    message = _load(pk)
    template = "messages/_detail_body.html" if wants_fragment(request) else "messages/message_detail.html"
    return render(request, template, _detail_context(request, message))


def _after_action(request, pk: int, status: int = 200, **extra):
    message = _load(pk)
    if request.htmx:
        return render(request, "messages/_detail_body.html", _detail_context(request, message, **extra), status=status)
    if status != 200:
        return render(
            request, "messages/message_detail.html", _detail_context(request, message, **extra), status=status
        )
    return redirect("message-detail", pk=pk)


@never_cache
@require_POST
@console_view(VIEW, ACTION_PERMS["retry"])
def message_retry_view(request, pk: int):
    message = _load(pk)
    form = RetryForm(request.POST)
    if not form.is_valid():
        return _after_action(request, pk, retry_form=form)
    changed = message_operator_retry(
        message_ids=[message.pk], actor=actor_of(request), reason=form.cleaned_data["reason"]
    )
    flash = "Retried: the message is queued again." if changed else f"Nothing changed: the message is {message.state}."
    return _after_action(request, pk, flash=flash, flash_level="ok" if changed else "warn")


@never_cache
@require_POST
@console_view(VIEW, ACTION_PERMS["discard"])
def message_discard_view(request, pk: int):
    message = _load(pk)
    form = DiscardForm(request.POST)
    if not form.is_valid():
        return _after_action(
            request, pk, discard_form=form, flash="A reason is required to discard.", flash_level="err"
        )
    changed = message_operator_discard(
        message_ids=[message.pk], actor=actor_of(request), reason=form.cleaned_data["reason"]
    )
    flash = "Discarded." if changed else f"Nothing changed: the message is {message.state}."
    return _after_action(request, pk, flash=flash, flash_level="ok" if changed else "warn")


@never_cache
@console_view(VIEW, "queue_messages.edit_payload")
def message_edit_view(request, pk: int):
    message = _load(pk)
    error = ""
    if request.method == "POST":
        form = EditPayloadForm(request.POST)
        if form.is_valid():
            try:
                message_edit_and_retry(
                    message_id=message.pk,
                    payload=form.cleaned_data["payload"],
                    actor=actor_of(request),
                    reason=form.cleaned_data["reason"],
                )
            except ActionRefused as exc:
                error = str(exc)
            else:
                return redirect("message-detail", pk=pk)
    else:
        form = EditPayloadForm(initial={"payload": _pretty(message.payload)[0]})
    status = 400 if request.method == "POST" else 200
    return render(
        request,
        "messages/message_edit.html",
        {"message": message, "form": form, "error": error, "editable": message.state == MessageState.DEAD_LETTERED},
        status=status,
    )


# --- dead letters ------------------------------------------------------------------------------

GROUP_FILTER = {"reason": "group", "terminal": "terminal", "entity": "entity_type"}


@require_GET
@console_view(VIEW, "queue_messages.view_deadletter")
def deadletter_list(request):
    grouping = request.GET.get("by", "reason")
    if grouping not in selectors.DEADLETTER_GROUPINGS:
        grouping = "reason"
    groups = selectors.deadletter_groups(grouping=grouping)
    notes = deadletter_group_notes(grouping=grouping)
    for g in groups:
        key = g["key"] or ""
        g["grouping"] = grouping
        g["note_obj"] = notes.get(key)
        g["query"] = urlencode({"state": MessageState.DEAD_LETTERED, GROUP_FILTER[grouping]: key})
    table = bind_table_context(DeadLetterGroupTable(groups), request)
    context = {
        "table": table,
        "grouping": grouping,
        "groupings": [(k, label) for k, (_, label) in selectors.DEADLETTER_GROUPINGS.items()],
        "total": sum(g["count"] for g in groups),
        "refresh_event": "messagesChanged",
    }
    return render_list(request, "messages/deadletter_list.html", context)


@require_POST
@console_view(VIEW, "queue_messages.annotate_deadletter")
def deadletter_note(request):
    form = GroupNoteForm(request.POST)
    if not form.is_valid():
        return HttpResponse("The note could not be saved: " + form.errors.as_text(), status=400)
    note = deadletter_group_note_set(
        grouping=form.cleaned_data["grouping"],
        key=form.cleaned_data["key"],
        note=form.cleaned_data["note"],
        actor=actor_of(request),
    )
    if request.htmx:
        return render(request, "messages/_group_note_saved.html", {"note": note})
    return redirect(f"/dead-letters/?by={form.cleaned_data['grouping']}")

"""Failure-group triage and superseded dead letters (issue 20): a group's page with its triage and history,
"take it", the triage form, and "discard the superseded ones" of a group or a selection.

Thin: they validate, authorise (on the server, whatever the page showed), call
messages.services.triage and the selectors, and render.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from messages.forms import GroupForm, SupersededForm, TriageForm
from messages.models import VIEW_PERM, MessageState, TriageStatus
from messages.selectors import DEADLETTER_GROUPINGS
from messages.selectors import triage as triage_selectors
from messages.services.console import ActionRefused
from messages.services.triage import (
    deadletter_group_take,
    deadletter_group_triage_set,
    deadletter_superseded_discard,
    superseded_reason,
)
from syncadmin.lib.console import actor_of, console_view, wants_fragment

VIEW_DEADLETTER = "queue_messages.view_deadletter"
TRIAGE_PERM = "queue_messages.triage_deadletter"
DISCARD_PERM = "queue_messages.discard_message"


def group_url(grouping: str, key: str) -> str:
    return reverse("deadletter-group") + "?" + urlencode({"by": grouping, "key": key})


def _bad_group(form) -> HttpResponse:
    return HttpResponse("No such dead-letter group: " + form.errors.as_text(), status=400, content_type="text/plain")


def _group_page(request, grouping: str, key: str, form: TriageForm | None = None):
    triage = triage_selectors.deadletter_group_triage(grouping=grouping, key=key)
    open_ids = triage_selectors.deadletter_group_open_ids(grouping=grouping, key=key)
    superseded = triage_selectors.message_superseded_sequences(message_ids=open_ids)
    if form is None:
        form = TriageForm(
            initial={
                "by": grouping,
                "key": key,
                "status": triage.status if triage else TriageStatus.NEW,
                "owner": triage.owner if triage else "",
                "ticket_url": triage.ticket_url if triage else "",
                "note": triage.note if triage else "",
            }
        )
    message_filter = triage_selectors.MESSAGE_FILTERS[grouping]
    context = {
        "grouping": grouping,
        "key": key,
        "grouping_label": DEADLETTER_GROUPINGS[grouping][1],
        "triage": triage,
        "status": triage.status if triage else TriageStatus.NEW,
        "status_label": triage.get_status_display() if triage else TriageStatus.NEW.label,
        "open_count": len(open_ids),
        "superseded_count": len(superseded),
        "history": triage_selectors.deadletter_group_history(grouping=grouping, key=key),
        "form": form,
        "query": urlencode({"state": MessageState.DEAD_LETTERED, message_filter: key}),
    }
    return render(request, "messages/deadletter_group.html", context)


@require_GET
@console_view(VIEW_PERM, VIEW_DEADLETTER)
def deadletter_group(request):
    form = GroupForm(request.GET)
    if not form.is_valid():
        return _bad_group(form)
    return _group_page(request, form.cleaned_data["by"], form.cleaned_data["key"])


@require_POST
@console_view(VIEW_PERM, VIEW_DEADLETTER, TRIAGE_PERM)
def deadletter_group_triage_view(request):
    group = GroupForm(request.POST)
    if not group.is_valid():
        return _bad_group(group)
    grouping, key = group.cleaned_data["by"], group.cleaned_data["key"]
    form = TriageForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            deadletter_group_triage_set(
                grouping=grouping, key=key, actor=actor_of(request), status=data["status"], owner=data["owner"],
                ticket_url=data["ticket_url"], note=data["note"],
            )  # fmt: skip
            return redirect(group_url(grouping, key))
        except ActionRefused as exc:
            form.add_error(exc.field if exc.field in form.fields else None, str(exc))
    return _group_page(request, grouping, key, form)  # the page again, with the form's errors


@require_POST
@console_view(VIEW_PERM, VIEW_DEADLETTER, TRIAGE_PERM)
def deadletter_group_take_view(request):
    form = GroupForm(request.POST)
    if not form.is_valid():
        return _bad_group(form)
    grouping, key = form.cleaned_data["by"], form.cleaned_data["key"]
    deadletter_group_take(grouping=grouping, key=key, actor=actor_of(request), username=request.user.get_username())
    if request.POST.get("back") == "list":
        return redirect(reverse("deadletter-list") + "?" + urlencode({"by": grouping}))
    return redirect(group_url(grouping, key))


@require_POST
@console_view(VIEW_PERM, DISCARD_PERM)
def deadletter_superseded_view(request):
    """Two steps, like the bulk actions: without ``confirmed`` say how many are superseded; with it, discard them."""
    template = "messages/_superseded_panel.html" if wants_fragment(request) else "messages/superseded.html"
    form = SupersededForm(request.POST)
    if not form.is_valid():
        return render(request, template, {"errors": form.errors}, status=400)
    data = form.cleaned_data
    grouping, key = data.get("by") or "", data.get("key") or ""
    if grouping:
        ids = triage_selectors.deadletter_group_open_ids(grouping=grouping, key=key)
        back = group_url(grouping, key)
    else:
        ids = sorted(set(data["select"]))
        back = reverse("message-list") + "?" + urlencode({"state": MessageState.DEAD_LETTERED})
    context = {"grouping": grouping, "key": key, "selected": data["select"], "examined": len(ids), "back": back}
    if not data.get("confirmed"):
        sequences = triage_selectors.message_superseded_sequences(message_ids=ids)
        context.update(count=len(sequences), reason=superseded_reason(sequences))
        return render(request, template, context)
    detail = {"group": {"grouping": grouping, "key": key}} if grouping else {}
    try:
        outcome = deadletter_superseded_discard(
            message_ids=ids, actor=actor_of(request), reason=data["reason"], detail=detail
        )
    except ActionRefused as exc:
        return render(request, template, {**context, "errors": {exc.field or "": [str(exc)]}}, status=400)
    context.update(done=outcome.discarded, outcome=outcome)
    response = render(request, template, context)
    response["HX-Trigger"] = "messagesChanged"
    return response

"""Open dead letters grouped by reason, terminal or entity type, with each group's triage (status, owner, note)
and how many of it are superseded; filtered by triage status and owner."""

from __future__ import annotations

from urllib.parse import urlencode

from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from messages import selectors
from messages.forms import GroupFilterForm, GroupNoteForm
from messages.models import VIEW_PERM, MessageState, TriageStatus
from messages.selectors import triage as triage_selectors
from messages.services.console import deadletter_group_note_set
from messages.tables import DeadLetterGroupTable
from syncadmin.lib.console import actor_of, bind_table_context, console_view
from syncadmin.lib.listing import ListPage


@require_GET
@console_view(VIEW_PERM, "queue_messages.view_deadletter")
def deadletter_list(request):
    filters = GroupFilterForm(request.GET)
    data = filters.cleaned_data if filters.is_valid() else {}
    grouping = data.get("by") or "reason"
    notes = selectors.deadletter_group_notes(grouping=grouping)
    groups = triage_selectors.deadletter_groups_match(
        selectors.deadletter_groups(grouping=grouping),
        triage=notes,
        status=data.get("status", ""),
        owner=data.get("owner", ""),
        username=request.user.get_username(),
    )
    superseded = triage_selectors.deadletter_superseded_counts(grouping=grouping)
    for g in groups:
        key = g["key"] or ""
        g["grouping"] = grouping
        g["note_obj"] = notes.get(key)
        g["superseded"] = superseded.get(key, 0)
        g["query"] = urlencode({"state": MessageState.DEAD_LETTERED, triage_selectors.MESSAGE_FILTERS[grouping]: key})
        g["group_query"] = urlencode({"by": grouping, "key": key})
    notices = () if filters.is_valid() else ("Filters ignored: " + filters.errors.as_text(),)
    listing = ListPage(request, table=bind_table_context(DeadLetterGroupTable(groups), request), notices=notices)
    context = {
        "grouping": grouping,
        "groupings": [(k, label) for k, (_, label) in selectors.DEADLETTER_GROUPINGS.items()],
        "total": sum(g["count"] for g in groups),
        "status_choices": TriageStatus.choices,
        "owners": triage_selectors.deadletter_group_owners(),
        "cur_status": data.get("status", ""),
        "cur_owner": data.get("owner", ""),
        "refresh_event": "messagesChanged",
    }
    return listing.render("messages/deadletter_list.html", context)


@require_POST
@console_view(VIEW_PERM, "queue_messages.annotate_deadletter")
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

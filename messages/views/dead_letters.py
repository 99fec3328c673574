"""Open dead letters grouped by reason, terminal or entity type, with the operators' notes on each group."""

from __future__ import annotations

from urllib.parse import urlencode

from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from messages import selectors
from messages.forms import GroupNoteForm
from messages.models import VIEW_PERM, MessageState
from messages.services.console import deadletter_group_note_set
from messages.tables import DeadLetterGroupTable
from syncadmin.lib.console import actor_of, bind_table_context, console_view
from syncadmin.lib.listing import ListPage

GROUP_FILTER = {"reason": "group", "terminal": "terminal", "entity": "entity_type"}


@require_GET
@console_view(VIEW_PERM, "queue_messages.view_deadletter")
def deadletter_list(request):
    grouping = request.GET.get("by", "reason")
    if grouping not in selectors.DEADLETTER_GROUPINGS:
        grouping = "reason"
    groups = selectors.deadletter_groups(grouping=grouping)
    notes = selectors.deadletter_group_notes(grouping=grouping)
    for g in groups:
        key = g["key"] or ""
        g["grouping"] = grouping
        g["note_obj"] = notes.get(key)
        g["query"] = urlencode({"state": MessageState.DEAD_LETTERED, GROUP_FILTER[grouping]: key})
    listing = ListPage(request, table=bind_table_context(DeadLetterGroupTable(groups), request))
    context = {
        "grouping": grouping,
        "groupings": [(k, label) for k, (_, label) in selectors.DEADLETTER_GROUPINGS.items()],
        "total": sum(g["count"] for g in groups),
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

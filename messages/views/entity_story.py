"""An entity's whole story: /entities/?entity_type=<type>&entity_key=<key>.

The key travels in the query string, not the path: a terminal's key may hold a slash, a question
mark or a percent sign, and a query string carries any of them as it is. Without both values the
page is the "find an entity" form; a value that is not one (an entity type outside ENTITY_RE, a key
too long) is that form's error, answered like a list's invalid filter (200, the form says why),
never a query.
"""

from __future__ import annotations

from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from messages.forms import EntityForm
from messages.models import VIEW_PERM
from messages.selectors import entity_story
from messages.tables import EntityStoryTable
from syncadmin.lib.console import console_view
from syncadmin.lib.listing import Keyset, ListPage


@never_cache  # shows the stored data of an entity
@require_GET
@console_view(VIEW_PERM)
def entity_story_view(request):
    asked = bool(request.GET.get("entity_type") or request.GET.get("entity_key"))
    form = EntityForm(request.GET if asked else None)
    if not asked or not form.is_valid():
        return render(request, "messages/entity_story.html", {"form": form})
    entity_type, entity_key = form.cleaned_data["entity_type"], form.cleaned_data["entity_key"]
    central, central_total = entity_story.entity_central_rows(entity_type=entity_type, entity_key=entity_key)
    listing = ListPage(
        request,
        table=EntityStoryTable,
        rows=entity_story.entity_messages(entity_type=entity_type, entity_key=entity_key),
        keyset=Keyset(entity_story.STORY_SORTS, "sequence"),
    )
    outcomes = entity_story.entity_outcomes(messages=listing.page.rows, central=central)
    for m in listing.page.rows:
        m.outcome = outcomes[m.pk]
    return listing.render(
        "messages/entity_story.html",
        {
            "form": form,
            "entity_type": entity_type,
            "entity_key": entity_key,
            "central": central,
            "central_total": central_total,
            "state_counts": entity_story.entity_message_states(entity_type=entity_type, entity_key=entity_key),
            "row_template": "messages/_story_rows.html",
        },
    )

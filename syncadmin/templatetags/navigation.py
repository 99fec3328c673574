"""The console's navigation: the "Views" menu of saved message-list views (the user's own and the team's)."""

from __future__ import annotations

from django import template

from messages.selectors.saved_views import saved_view_menu

register = template.Library()


@register.inclusion_tag("messages/_views_menu.html", takes_context=True)
def views_menu(context, oob: bool = False) -> dict:
    """One bounded query per page; ``oob``: also replaces the menu already on the page (htmx out-of-band swap)."""
    user = context["request"].user
    personal, team = saved_view_menu(user=user) if user.is_authenticated else ([], [])
    return {"personal": personal, "team": team, "oob": oob, "on": "/views/" in context["request"].path}

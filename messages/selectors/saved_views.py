"""Reads of the message list's saved views: what a user sees in the navigation, and one view to open."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from messages.models import SavedView


def saved_views_visible(*, user) -> QuerySet:
    """The user's own views and the team's, team views first, then by name."""
    return (
        SavedView.objects.filter(Q(owner=user) | Q(shared=True))
        .select_related("owner")
        .order_by("-shared", "name", "pk")
    )


def saved_view_menu(*, user, limit: int = 50) -> tuple[list[SavedView], list[SavedView]]:
    """(personal, team) views for the navigation's menu: a bounded read, one query."""
    personal, team = [], []
    for view in saved_views_visible(user=user).only("pk", "name", "shared", "owner_id")[:limit]:
        (team if view.shared else personal).append(view)
    return personal, team


def saved_view_get(*, user, pk: int) -> SavedView | None:
    """One view the user may open (their own or a team view); None otherwise."""
    return saved_views_visible(user=user).filter(pk=pk).first()

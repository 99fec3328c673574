"""Saved views of the message list: save the current filter under a name, for oneself or the team; delete.

Rules (docs/support.md, "Saved views"):
- Any console user saves personal views; a team view, shown in everyone's navigation, takes the
  permission ``queue_messages.share_savedview`` (SHARE_VIEW_PERM), to save and to delete.
- A user deletes their own personal views; nobody else's.
- Names: 1 to SAVED_VIEW_NAME_MAX characters, unique among a user's views and among team views.
- The query string is the message list's filters (no cursor, no sort), validated through those
  filters before it is saved: the caller passes them in as ``message_filter``
  (``messages.filtersets.message_filter_queryset``), so that this core imports no interface.
- Saving and deleting a team view is audited (it changes what the team sees); personal ones are not.
"""

from __future__ import annotations

from collections.abc import Callable

from django.db import IntegrityError, transaction
from django.http import QueryDict
from django.utils import timezone

from messages.models import SAVED_VIEW_NAME_MAX, SAVED_VIEW_QUERY_MAX, SHARE_VIEW_PERM, SavedView
from syncadmin.services import audit_record

MessageFilter = Callable[[str], object]
NOT_FILTERS = ("after", "before", "sort", "page")  # where the list is, not what it selects


class SavedViewRefused(Exception):
    """The view cannot be saved or deleted as asked; the message says why. ``forbidden``: a permission is missing."""

    def __init__(self, message: str, *, field: str | None = None, forbidden: bool = False):
        super().__init__(message)
        self.field = field
        self.forbidden = forbidden


def saved_view_query_normalise(query: str) -> str:
    """The filters of ``query`` only, empty values dropped, in a stable order."""
    data = QueryDict(query or "", mutable=True)
    for key in NOT_FILTERS:
        data.pop(key, None)
    kept = QueryDict(mutable=True)
    for key in sorted(data):
        values = [v for v in data.getlist(key) if v != ""]
        if values:
            kept.setlist(key, values)
    return kept.urlencode()


def saved_view_create(*, owner, name: str, query: str, shared: bool, message_filter: MessageFilter) -> SavedView:
    """Save ``query`` (the message list's filters) as ``name``; SavedViewRefused says why not."""
    name = (name or "").strip()
    if not name or len(name) > SAVED_VIEW_NAME_MAX:
        raise SavedViewRefused(f"a name of 1 to {SAVED_VIEW_NAME_MAX} characters is required", field="name")
    if shared and not owner.has_perm(SHARE_VIEW_PERM):
        raise SavedViewRefused("only support leads and admins may save a team view", field="shared", forbidden=True)
    query = saved_view_query_normalise(query)
    if len(query) > SAVED_VIEW_QUERY_MAX:
        raise SavedViewRefused(f"the filter is longer than {SAVED_VIEW_QUERY_MAX} characters", field="query")
    try:
        message_filter(query)
    except ValueError as exc:
        raise SavedViewRefused(f"the filter is not valid: {exc}", field="query") from exc
    if SavedView.objects.filter(owner=owner, name=name).exists():
        raise SavedViewRefused(f"you have a view named “{name}” already", field="name")
    taken = SavedViewRefused(f"a team view named “{name}” exists already", field="name")
    if shared and SavedView.objects.filter(shared=True, name=name).exists():
        raise taken
    try:
        with transaction.atomic():
            view = SavedView.objects.create(
                owner=owner, name=name, query=query, shared=shared, created_at=timezone.now()
            )
            if shared:
                _audit(view, action="savedview.create", actor=owner)
    except IntegrityError as exc:  # the same name saved between the checks and the insert
        raise (taken if shared else SavedViewRefused(f"you have a view named “{name}” already", field="name")) from exc
    return view


def saved_view_delete(*, view: SavedView, user) -> None:
    """Delete ``view``: the owner's own personal view, or a team view by someone with the permission."""
    if view.shared:
        if not user.has_perm(SHARE_VIEW_PERM):
            raise SavedViewRefused("only support leads and admins may delete a team view", forbidden=True)
    elif view.owner_id != user.pk:
        raise SavedViewRefused("this is another user's view", forbidden=True)
    with transaction.atomic():
        if view.shared:
            _audit(view, action="savedview.delete", actor=user)
        view.delete()


def _audit(view: SavedView, *, action: str, actor) -> None:
    audit_record(
        actor=f"user:{actor.get_username()}",
        action=action,
        object_type="savedview",
        object_id=str(view.pk),
        detail={"name": view.name, "query": view.query, "owner": view.owner.get_username()},
    )

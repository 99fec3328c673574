"""Saved views of the message list: save the current filter, list, open (re-validated), delete.

Who may do what is the service's rule (messages/services/saved_views.py), checked on the server:
any console user saves and deletes their own views; team views take ``queue_messages.share_savedview``.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from messages.filtersets import SavedViewFilterSet, message_filter_queryset
from messages.forms import SavedViewForm
from messages.models import VIEW_PERM
from messages.selectors import saved_views as selectors
from messages.services.saved_views import SavedViewRefused, saved_view_create, saved_view_delete
from messages.tables import SavedViewTable
from syncadmin.lib.console import bind_table_context, console_view
from syncadmin.lib.listing import ListPage

PER_PAGE = 50


@require_GET
@console_view(VIEW_PERM)
def saved_view_list(request):
    filterset = SavedViewFilterSet(request.GET or None, queryset=selectors.saved_views_visible(user=request.user))
    table = bind_table_context(SavedViewTable(filterset.selected), request)
    listing = ListPage(request, table=table, filterset=filterset, per_page=PER_PAGE)
    return listing.render("messages/saved_view_list.html")


@require_POST
@console_view(VIEW_PERM)
def saved_view_save(request):
    """Save the message list's current filter; answers the list page's save form (htmx) or a page."""
    form = SavedViewForm(request.POST)
    error, view = "", None
    if form.is_valid():
        try:
            view = saved_view_create(
                owner=request.user,
                name=form.cleaned_data["name"],
                query=form.cleaned_data["query"],
                shared=form.cleaned_data["shared"],
                message_filter=message_filter_queryset,
            )
        except SavedViewRefused as exc:
            if exc.forbidden:
                raise PermissionDenied(str(exc)) from exc
            error = str(exc)
    else:
        error = "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items())
    context = {"saved": view, "error": error}
    if request.htmx:  # the form's result, and the navigation's menu with the new view in it
        return render(request, "messages/_saved_view_result.html", context)
    return render(request, "messages/saved_view_result.html", context, status=400 if error else 200)


@require_GET
@console_view(VIEW_PERM)
def saved_view_open(request, pk: int):
    """The message list with the view's filters, checked again: a filter that changed since is said, not a 500."""
    view = selectors.saved_view_get(user=request.user, pk=pk)
    if view is None:
        raise Http404("no such view")
    try:
        message_filter_queryset(view.query)
    except ValueError as exc:
        return render(request, "messages/saved_view_result.html", {"stale": view, "error": str(exc)})
    return redirect(reverse("message-list") + (f"?{view.query}" if view.query else ""))


@require_POST
@console_view(VIEW_PERM)
def saved_view_delete_view(request, pk: int):
    view = selectors.saved_view_get(user=request.user, pk=pk)
    if view is None:
        raise Http404("no such view")
    try:
        saved_view_delete(view=view, user=request.user)
    except SavedViewRefused as exc:
        raise PermissionDenied(str(exc)) from exc
    return redirect("saved-view-list")

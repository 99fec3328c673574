"""Small helpers shared by the console's views (an interface layer: never imported by the core)."""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import EmptyPage
from django.shortcuts import render

from syncadmin.validation import parse_id


def console_view(*perms: str):
    """Login required (anonymous -> login page), then every permission in ``perms`` or 403.

    The check is on the server for every request; templates hide buttons only as a courtesy.
    """

    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if perms and not request.user.has_perms(perms):
                raise PermissionDenied(f"you need the permission {' and '.join(perms)}")
            return view(request, *args, **kwargs)

        return login_required(wrapped)

    return decorator


def actor_of(request) -> str:
    """How an operator is named in MessageEvent.actor and AuditEntry.actor."""
    return f"user:{request.user.get_username()}"


def wants_fragment(request) -> bool:
    """Whether an htmx request asks for a part of the page rather than the page.

    htmx restoring a history entry it has no copy of asks for the page (HX-History-Restore-Request),
    even from an htmx version that also sends HX-Request. Every response says ``Vary: HX-Request``
    (syncadmin.console_middleware), so a browser never serves one kind of answer for the other.
    """
    return bool(request.htmx) and not request.htmx.history_restore_request


def render_list(request, template: str, context: dict):
    """netbox style: an htmx request gets only the table partial, a normal one the whole page."""
    if wants_fragment(request) and not request.htmx.boosted and request.htmx.target in (None, "table-container"):
        return render(request, "htmx/table.html", context)
    return render(request, template, context)


def bind_table_context(table, request):
    """TemplateColumns render outside the page's context: give them perms and the CSRF token."""
    from django.contrib.auth.context_processors import PermWrapper
    from django.middleware.csrf import get_token
    from django.template import Context

    table.context = Context({"request": request, "perms": PermWrapper(request.user), "csrf_token": get_token(request)})
    return table


def paginate_table(request, table, *, per_page: int):
    """Sort and page a django-tables2 table from the query string (``?sort=``, ``?page=``).

    Used instead of django-tables2's RequestConfig, which also takes the page size from
    ``?per_page=`` (a negative one raised EmptyPage, a 500; a huge one would read a whole table
    into one page): the console's page size is a setting, not a request parameter. A page
    number that is not one shows the first page, one past the end the last (the pager says
    which page is shown), as RequestConfig's silent mode does.
    """
    table.request = request
    order_by = request.GET.getlist(table.prefixed_order_by_field)
    if order_by:
        table.order_by = order_by
    try:
        table.paginate(page=parse_id(request.GET.get(table.prefixed_page_field)) or 1, per_page=per_page)
    except EmptyPage:
        table.page = table.paginator.page(table.paginator.num_pages)
    return table

"""The console's one list page (netbox's ObjectListView): rows, filterset, table, pages, htmx partial.

Every list view of every app builds its page here::

    listing = ListPage(request, table=MessageTable(...), filterset=fs, keyset=Keyset(sorts, "-received_at"))
    return listing.render("messages/message_list.html", {...})

- The rows are the filterset's selection: an invalid filter lists nothing, and the notice says why.
- Pages: ``keyset`` (syncadmin/lib/pagination.py: a cursor in the URL, for the large tables) or
  numbered pages of ``per_page`` rows (``paginate_table``); neither for a short table.
- An htmx request for the table (``HX-Target`` one of ``targets``, not boosted, not a history
  restore: ``wants_fragment``) gets only the table partial, ``htmx/table.html``; any other request
  the whole page. Every response says ``Vary: HX-Request`` (syncadmin/lib/middleware.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.core.paginator import EmptyPage
from django.shortcuts import render

from syncadmin.lib.console import wants_fragment
from syncadmin.lib.pagination import keyset_page
from syncadmin.lib.validation import parse_id

# The id of the element htmx/table.html renders: the target of its own pager and sort links.
TABLE_TARGETS = (None, "table-container")


@dataclass
class Keyset:
    """Keyset pagination of a list: the public sort names (-> NOT NULL fields) and the default sort."""

    sorts: dict[str, str]
    default: str
    sortable: bool = True  # False: always the default order, whatever ?sort= says

    @classmethod
    def newest_first(cls, field: str) -> Keyset:
        """A history: newest ``field`` first, no other order."""
        return cls({field: field}, f"-{field}", sortable=False)


class ListPage:
    """One console list page: build it (rows paged into ``table``), adjust the table, then ``render``."""

    def __init__(self, request, *, table, rows=None, filterset=None, keyset: Keyset | None = None,
                 per_page: int | None = None, table_kwargs: dict | None = None, notices=()):  # fmt: skip
        """With ``keyset``, ``table`` is a django-tables2 Table class, made with the page's rows (the
        filterset's selection, else ``rows``) and ``table_kwargs``, ``per_page`` of them
        (CONSOLE_PAGE_SIZE by default); otherwise it is a Table already, paged here when
        ``per_page`` is given."""
        self.request = request
        self.filterset = filterset
        self.page = None
        notes = [filterset.notice] if filterset is not None else []
        if keyset is not None:
            self.page = keyset_page(
                filterset.selected if filterset is not None else rows,
                sort=request.GET.get("sort") if keyset.sortable else keyset.default,
                allowed=keyset.sorts,
                default=keyset.default,
                per_page=per_page or settings.CONSOLE_PAGE_SIZE,
                after=request.GET.get("after"),
                before=request.GET.get("before"),
            )
            notes.append(self.page.notice)
            table = table(self.page.rows, **(table_kwargs or {}))
        elif per_page is not None:
            paginate_table(request, table, per_page=per_page)
        self.table = table
        self.notice = "; ".join(n for n in (*notes, *notices) if n)

    def render(self, template: str, context: dict | None = None, *, targets=TABLE_TARGETS):
        """The whole page, or only the table partial for an htmx request aimed at the table."""
        context = {**(context or {}), "table": self.table, "notice": self.notice}
        if self.filterset is not None:
            context.setdefault("filter", self.filterset)
        if self.page is not None:
            context["page"] = self.page
        request = self.request
        if wants_fragment(request) and not request.htmx.boosted and request.htmx.target in targets:
            return render(request, "htmx/table.html", context)
        return render(request, template, context)


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

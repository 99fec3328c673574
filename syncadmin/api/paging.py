"""Keyset pages for the API's lists: the console's cursors (syncadmin/lib/pagination.py), as JSON.

``next`` is the cursor of the page after this one (``?after=``), ``previous`` of the one before
(``?before=``); a cursor the server did not write is a 400, not a silently different page.
"""

from __future__ import annotations

from ninja import Schema

from syncadmin.api.problems import ProblemError
from syncadmin.lib.pagination import keyset_page

LIMIT_MAX = 500


class PageInfo(Schema):
    next: str | None
    previous: str | None
    sort: str


def page_of(queryset, *, sort: str | None, allowed: dict[str, str], default: str, limit: int, after, before):
    """The rows of one page and its PageInfo; ProblemError(400) for an unknown sort or a bad cursor."""
    if sort and sort.removeprefix("-") not in allowed:
        raise ProblemError(
            400, f"cannot sort on {sort!r}", errors=[("query.sort", f"one of {sorted(allowed)}, '-' for descending")]
        )
    if after and before:
        raise ProblemError(400, "give after or before, not both", errors=[("query.after", "after and before together")])
    page = keyset_page(
        queryset,
        sort=sort,
        allowed=allowed,
        default=default,
        per_page=limit,
        after=after or None,
        before=before or None,
    )
    if page.notice:
        field = "query.after" if after else "query.before"
        raise ProblemError(400, "the cursor is not valid", errors=[(field, page.notice)])
    return page.rows, PageInfo(next=page.next_cursor, previous=page.prev_cursor, sort=page.sort)

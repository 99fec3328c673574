"""Raw-SQL plumbing: one function per database vendor, and chunks for IN lists.

The engine's hot statements are written as SQL for each database that can do better than the
ORM (PostgreSQL's arrays and data-modifying CTEs, SQLite's INDEXED BY and multi-row VALUES),
with a portable variant for the others (Oracle). ``per_vendor`` keeps each variant a function of
its own, next to the operation it serves, instead of ``if conn.vendor == ...`` branches.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Iterator
from functools import wraps
from itertools import islice

from django.db import connections

# Oracle allows at most 1,000 items in an IN list.
IN_LIST_MAX = 900


def chunks(ids: Iterable, size: int = 1000) -> Iterator[list]:
    """``ids`` in lists of at most ``size``, in order."""
    it = iter(ids)
    while chunk := list(islice(it, size)):
        yield chunk


def per_vendor(portable: Callable) -> Callable:
    """Decorate the portable variant of an operation; ``@op.vendor("postgresql")`` adds another.

    A call runs the variant of the vendor of the connection named by its ``using`` argument
    (keyword or positional, as the portable variant declares it; its default when left out).
    """
    params = list(inspect.signature(portable).parameters.values())
    names = [p.name for p in params]
    if "using" not in names:
        raise TypeError(f"{portable.__qualname__} has no 'using' parameter to choose a vendor by")
    position = names.index("using")
    default = params[position].default
    variants: dict[str, Callable] = {}

    @wraps(portable)
    def dispatch(*args, **kwargs):
        if "using" in kwargs:
            using = kwargs["using"]
        elif len(args) > position:
            using = args[position]
        else:
            using = default
        return variants.get(connections[using].vendor, portable)(*args, **kwargs)

    def vendor(name: str):
        def register(fn: Callable) -> Callable:
            variants[name] = fn
            return fn

        return register

    dispatch.vendor = vendor
    dispatch.variants = variants
    dispatch.portable = portable
    return dispatch

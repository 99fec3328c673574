"""PostgreSQL: a cursor that binds its parameters on the server, for the engine's hot statements.

Django's psycopg backend binds parameters on the client by default: it quotes every value into
the statement's text in Python. For the arrays the engine sends on every batch (ids, entity
keys, JSON documents, metric labels) that quoting ran a regular expression per escaped
character and cost more than the statements themselves (profiled: 0.45 ms against 0.18 ms per
metric INSERT). This cursor sends the values apart from the statement, arrays in binary where a
statement marks them ``%b``. It is a normal Django cursor otherwise: same connection and
transaction, Django's database exceptions, execute wrappers and query logging.

``prepare=True`` also prepares the statement on the server the first time a connection runs it,
so later runs skip parsing and planning. Only for statements whose best plan cannot depend on
how big a table is (inserts from arrays, updates by primary key): a prepared statement may
settle on one generic plan, and one made while a table was nearly empty would scan it for
good. Off for every statement when DATABASE_PREPARED_STATEMENTS=off (settings.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from types import TracebackType

from django.db import connections
from django.db.backends.postgresql.base import ServerBindingCursor
from django.db.backends.utils import CursorWrapper
from psycopg import Pipeline
from psycopg.pq import Format

BINARY = Format.BINARY

_classes: dict[bool, type] = {}


def _cursor_class(prepare: bool) -> type:
    if prepare not in _classes:

        class Cursor(ServerBindingCursor):
            def execute(self, query, params=None, **kwargs):
                # None leaves it to the connection's threshold, which is never reached (settings.py).
                result = super().execute(query, params, prepare=prepare or None, **kwargs)
                if self._query is None:
                    # psycopg keeps no query for a prepared run; Django's query log (DEBUG,
                    # CaptureQueriesContext, the debug toolbar) reads its text from there.
                    self._query = self._converted
                return result

            def _convert_query(self, query, params=None):
                self._converted = super()._convert_query(query, params)
                return self._converted

        _classes[prepare] = Cursor
    return _classes[prepare]


def server_binding_cursor(alias: str, *, prepare: bool = False, binary: bool = False) -> CursorWrapper:
    """A Django cursor on ``alias`` (PostgreSQL only) whose parameters travel apart from the SQL.

    ``binary`` asks for the results in binary: psycopg's C loaders decode them, where Django's
    timestamptz loader for the text format parses each value in Python. The times come back
    aware, in the connection's time zone (UTC: Django sets it), as from the text loader.
    """
    conn = connections[alias]
    conn.close_if_health_check_failed()
    conn.ensure_connection()
    with conn.wrap_database_errors:
        # What BaseDatabaseWrapper._cursor() does, with the cursor class chosen here rather than
        # by the connection's OPTIONS (server_side_binding there would switch every query over).
        cursor = _cursor_class(prepare)(conn.connection)
        if binary:
            cursor.format = BINARY
        return conn._prepare_cursor(cursor)


# --- arrays as one text ----------------------------------------------------------------------------
#
# psycopg dumps a list bound as an array element by element in Python (its array dumper has no C
# form): 0.6 µs an element on the reference machine, and a batch of 100 messages sends about 1,300
# elements (entity keys, JSON documents, ids, metric labels): most of a worker's cost of sending
# its statements. Joined into one string in C and split again by the server (string_to_array, also
# C), a 7-array statement of 100 rows cost the client 332 µs against 759 µs, with the server's time
# unchanged (measured). ``texts`` and ``numbers`` return the SQL expression of the array and its one
# parameter, for statements run by ``server_binding_cursor``.

SEPARATOR = "\x1f"  # ASCII's unit separator: never in valid JSON text, and XML 1.0 cannot carry it


def texts(values: Sequence[str]) -> tuple[str, object]:
    """A ``text[]`` of ``values``: (its SQL expression, its parameter).

    One joined string where that round-trips exactly; the array in binary otherwise (a value
    holding the separator, or one lone empty string, which string_to_array would read as no
    element at all). The two forms are two statement texts, each prepared on its own.
    """
    joined = SEPARATOR.join(values)
    if joined and joined.count(SEPARATOR) == len(values) - 1:
        return "string_to_array(%s, chr(31))", joined
    return "%b::text[]", list(values)


def numbers(values: Sequence[int | float | bool], sql_type: str) -> tuple[str, str]:
    """An array of numbers (or booleans) of ``sql_type`` (``bigint``, ``float8``, ``bool``): (its SQL
    expression, its parameter). Python's text of a number or a boolean is one PostgreSQL reads."""
    return f"string_to_array(%s, ',')::{sql_type}[]", ",".join(map(str, values))


def unnested(*columns: tuple[str, Sequence]) -> tuple[str, list]:
    """``unnest(...)`` of parallel arrays, each given as (its SQL type, its values): (the SQL, its
    parameters), for ``... FROM <SQL> AS u(a, b, ...)``. ``text`` columns go by ``texts``, the
    others by ``numbers``: the one way the hot statements turn rows into a set."""
    arrays = [texts(values) if sql_type == "text" else numbers(values, sql_type) for sql_type, values in columns]
    return f"unnest({', '.join(sql for sql, _ in arrays)})", [param for _, param in arrays]


def pipelined(alias: str) -> AbstractContextManager:
    """psycopg's pipeline mode on ``alias``'s open connection: statements are sent without waiting
    for each one's result, and a fetch (or the block's end) waits for them all. One round trip for
    statements whose results the caller does not read before the last. A plain block where the
    client library is older than pipeline mode (libpq 14)."""
    return connections[alias].connection.pipeline() if Pipeline.is_supported() else nullcontext()


class PipelineFromHere:
    """A block in which psycopg's pipeline mode on ``alias`` begins only when ``start()`` is called.

    For a transaction's last statements, whose results nobody reads: entered outside the
    transaction's ``atomic()`` and started once its body is done, the statements run by the
    blocks that close after that (deltas and counters written on exit) and the COMMIT go in one
    round trip; an error among them is raised by the commit, which then rolls back, as it would
    be raised by the statement. Nothing happens where the database is not PostgreSQL, or the
    client library has no pipeline mode.
    """

    def __init__(self, alias: str):
        self.alias = alias
        self._pipeline: AbstractContextManager | None = None

    def __enter__(self) -> PipelineFromHere:
        return self

    def start(self) -> None:
        conn = connections[self.alias]
        if conn.vendor == "postgresql" and conn.connection is not None:
            self._pipeline = pipelined(self.alias)
            self._pipeline.__enter__()

    def __exit__(self, kind: type | None, value: BaseException | None, trace: TracebackType | None) -> None:
        pipeline, self._pipeline = self._pipeline, None
        if pipeline is not None:
            pipeline.__exit__(kind, value, trace)

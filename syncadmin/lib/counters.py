"""Cluster-wide counters kept in the database (the MetricCounter table).

Why the database and not prometheus_client's per-process files: workers run in django-q2
processes, possibly on other machines than the web server that answers /metrics, and they
are recycled every few hundred tasks. A delta row written in the transaction of the change it
counts is exact (a rolled-back apply counts nothing), survives restarts, and is visible to
every web process. Appending rows (never updating a shared one) keeps workers from queueing
on a hot row; ``metric_counters_fold`` (run by the once-a-minute sample task) folds them into
one base row per series so the table, and a scrape, stay small.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from itertools import islice

from django.db import connections, router, transaction
from django.db.models import Sum

from syncadmin.lib.fastsql import server_binding_cursor, unnested
from syncadmin.lib.sql import per_vendor
from syncadmin.models import MetricCounter

LABEL_VALUE_MAX = 64


def labels_key(labels: dict | None) -> str:
    """Canonical text of a label set: the grouping key of a series."""
    if not labels:
        return ""
    items = tuple(labels.items())
    # Remembered for text values only: 1, 1.0 and True are one dict key but three label texts.
    texts = all(type(v) is str for _, v in items)
    if texts and (key := _KEYS.get(items)) is not None:
        return key
    clean = {k: str(v)[:LABEL_VALUE_MAX] for k, v in items}
    key = json.dumps(clean, sort_keys=True, separators=(",", ":"))
    if texts:
        if len(_KEYS) >= _KEYS_MAX:
            _KEYS.clear()
        _KEYS[items] = key
    return key


# The keys already made: a worker's batch writes the same few dozen series every time (57 rows a
# batch in bench/engine.py's mix), and encoding each label set as JSON again was most of the
# batch's metric cost. Bounded: a process that meets more label sets starts over.
_KEYS: dict[tuple, str] = {}
_KEYS_MAX = 10_000


def labels_parse(key: str) -> dict[str, str]:
    return json.loads(key) if key else {}


def metric_counter_add(*, rows: Iterable[tuple[str, dict | None, float]]) -> int:
    """Append one delta row per (name, labels, value); zero values are skipped. One INSERT.

    Written as SQL where a multi-row VALUES exists: this runs in every ingest and every
    worker batch, and bulk_create's model instances cost twice the statement's CPU.
    """
    values = [(name, labels_key(labels), float(value)) for name, labels, value in rows if value]
    if values:
        _deltas_insert(router.db_for_write(MetricCounter), values)
    return len(values)


@per_vendor
def _deltas_insert(using: str, values: list[tuple[str, str, float]]) -> None:
    MetricCounter.objects.using(using).bulk_create([MetricCounter(name=n, labels=lb, value=v) for n, lb, v in values])


@_deltas_insert.vendor("postgresql")
def _deltas_insert_postgresql(using: str, values: list[tuple[str, str, float]]) -> None:
    # Values as arrays bound on the server (syncadmin/lib/fastsql.py): one short statement text
    # whatever the number of rows, and no quoting of the labels in Python.
    rows, params = unnested(("text", [v[0] for v in values]), ("text", [v[1] for v in values]),
                            ("float8", [v[2] for v in values]))  # fmt: skip
    with server_binding_cursor(using, prepare=True) as cursor:
        cursor.execute(
            f"INSERT INTO {MetricCounter._meta.db_table} (name, labels, value, base)"
            f" SELECT n, l, v, false FROM {rows} AS u(n, l, v)",
            params,
        )


@_deltas_insert.vendor("sqlite")
def _deltas_insert_sqlite(using: str, values: list[tuple[str, str, float]]) -> None:
    with connections[using].cursor() as cursor:
        for start in range(0, len(values), 200):  # well inside SQLite's limit on parameters
            chunk = values[start : start + 200]
            cursor.execute(
                f"INSERT INTO {MetricCounter._meta.db_table} (name, labels, value, base) VALUES "
                + ", ".join(["(%s, %s, %s, %s)"] * len(chunk)),
                [v for name, labels, value in chunk for v in (name, labels, value, False)],
            )


_local = threading.local()


@contextmanager
def collected() -> Iterator[None]:
    """Gather the metric deltas of a block and write them as one INSERT when it ends.

    Enter it inside the transaction whose changes it counts (``with transaction.atomic(),
    collected():``): the INSERT then runs just before that transaction commits, and if the
    block raises nothing is written (the transaction is rolling back anyway). A claim or a
    batch otherwise writes one delta INSERT per transition plus one for the batch.
    """
    stack = _local.__dict__.setdefault("stack", [])
    rows: list = []
    stack.append(rows)
    try:
        yield
    finally:
        stack.pop()
    metric_deltas_add(rows)


def metric_deltas_add(rows: list) -> None:
    """Count (name, labels, value) rows: now, or when the innermost ``collected()`` block ends."""
    stack = getattr(_local, "stack", None)
    if stack:
        stack[-1].extend(rows)
    else:
        metric_counter_add(rows=rows)


# Delta rows folded per transaction, and at most per fold (the sample task's run).
FOLD_CHUNK = 20_000
FOLD_LIMIT = 2_000_000


def metric_counters_fold(*, limit: int = FOLD_LIMIT, chunk: int = FOLD_CHUNK) -> dict[tuple[str, str], float]:
    """Fold the delta rows into the base rows, ``chunk`` rows per transaction, until none are left
    (or ``limit`` were folded); returns what was folded per series.

    Each delta is folded exactly once: rows are locked with SKIP LOCKED (a concurrent fold
    skips them) and only the rows that were read are deleted. Rows of a transaction still in
    flight are not visible yet and are folded next time. A draining backlog writes a few
    hundred thousand delta rows a minute: the fold used to take 50,000 a run, so the table
    grew while it drained, and it read them all into the worker (+18 MB of RSS that stayed,
    measured). On PostgreSQL the rows are now summed by the statement that deletes them.
    """
    folded: dict[tuple[str, str], float] = defaultdict(float)
    done = 0
    while done < limit:
        size = min(chunk, limit - done)
        with transaction.atomic():
            sums, taken = _deltas_take(size)
            if sums:
                _bases_add(sums)
        for key, value in sums.items():
            folded[key] += value
        done += taken
        if taken < size:
            break
    return dict(folded)


def _deltas_take(size: int) -> tuple[dict[tuple[str, str], float], int]:
    """Delete up to ``size`` delta rows (locked, SKIP LOCKED); return their sums per series and
    how many there were. Call inside a transaction."""
    return _deltas_delete(MetricCounter.objects.db, size)


@per_vendor
def _deltas_delete(using: str, size: int) -> tuple[dict[tuple[str, str], float], int]:
    qs = (
        MetricCounter.objects.using(using)
        .select_for_update(skip_locked=True)
        .filter(base=False)
        .order_by("pk")
        .values_list("pk", "name", "labels", "value")
    )
    if connections[using].features.supports_select_for_update_with_limit:
        fresh = list(qs[:size])
    else:  # Oracle: FOR UPDATE cannot take FETCH FIRST; rows lock as they are fetched
        fresh = list(islice(qs.iterator(chunk_size=1000), size))
    sums: dict[tuple[str, str], float] = defaultdict(float)
    for _pk, name, labels, value in fresh:
        sums[(name, labels)] += value
    pks = [row[0] for row in fresh]
    for i in range(0, len(pks), 1000):
        MetricCounter.objects.using(using).filter(pk__in=pks[i : i + 1000]).delete()
    return dict(sums), len(fresh)


@_deltas_delete.vendor("postgresql")
def _deltas_delete_postgresql(using: str, size: int) -> tuple[dict[tuple[str, str], float], int]:
    # The rows are summed by the statement that deletes them.
    table = MetricCounter._meta.db_table
    with connections[using].cursor() as cursor:
        cursor.execute(
            f"WITH fresh AS (SELECT id FROM {table} WHERE NOT base ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED),"
            f" gone AS (DELETE FROM {table} AS m USING fresh WHERE m.id = fresh.id"
            " RETURNING m.name, m.labels, m.value)"
            " SELECT name, labels, sum(value), count(*) FROM gone GROUP BY name, labels",
            [size],
        )
        rows = cursor.fetchall()
    return {(name, labels): value for name, labels, value, _ in rows}, sum(n for *_, n in rows)


def _bases_add(sums: dict[tuple[str, str], float]) -> None:
    """Add ``sums`` to the series' base rows (created where missing). Call inside a transaction."""
    names = {name for name, _ in sums}
    bases = {
        (row.name, row.labels): row
        for row in MetricCounter.objects.select_for_update().filter(base=True, name__in=names)
    }
    changed, new = [], []
    for key, value in sums.items():
        row = bases.get(key)
        if row is None:
            new.append(MetricCounter(name=key[0], labels=key[1], value=value, base=True))
        else:
            row.value += value
            changed.append(row)
    if changed:
        MetricCounter.objects.bulk_update(changed, ["value"], batch_size=500)
    if new:
        MetricCounter.objects.bulk_create(new)


def metric_counter_totals() -> dict[str, dict[str, float]]:
    """name -> {labels key -> total}: one grouped query over a table of a few hundred rows."""
    totals: dict[str, dict[str, float]] = defaultdict(dict)
    for name, labels, total in (
        MetricCounter.objects.values_list("name", "labels").annotate(total=Sum("value")).order_by()
    ):
        totals[name][labels] = total
    return totals

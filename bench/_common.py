"""What several benchmarks share: a fresh PostgreSQL database of their own, bench terminals."""

from __future__ import annotations

from pathlib import Path


def timed_processes(target, args_per_process: list[tuple]) -> float:
    """Start one process per argument tuple, wait for them all; the seconds it took. Exits if one failed
    (a worker that crashed halfway would otherwise make its loop look fast)."""
    import multiprocessing as mp
    import time

    procs = [mp.Process(target=target, args=args) for args in args_per_process]
    started = time.perf_counter()
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    elapsed = time.perf_counter() - started
    if any(p.exitcode for p in procs):
        raise SystemExit(f"a benchmark process of {target.__name__} failed")
    return elapsed


def timed_with_writes(dsn: str, table: str, total: int, target, per_process: list[tuple]) -> tuple[float, str]:
    """Run the drain; its msg/s and what it wrote: ``table``'s row updates (of them HOT, in place)
    and the cluster's WAL bytes per message (the whole server's: other databases' writes count)."""
    import time

    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn, conn.cursor() as cursor:
        upd, hot = table_updates(cursor, table)
        checkpoint(dsn)
        lsn = cursor.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
        rate = total / timed_processes(target, per_process)
        wal = cursor.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s)", [lsn]).fetchone()[0]
        # A backend's counts are flushed when it exits: wait for the workers' backends to be gone.
        for _ in range(100):
            if not cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                                  " AND pid <> pg_backend_pid()").fetchone()[0]:  # fmt: skip
                break
            time.sleep(0.05)
        upd2, hot2 = table_updates(cursor, table)
    upd, hot = upd2 - upd, hot2 - hot
    return rate, f"{upd:,} updates, {hot:,} HOT ({hot / max(upd, 1):.0%}), {float(wal) / total:,.0f} WAL B/msg"


def fresh_database(pg: str, name: str) -> str:
    """Drop and create database ``name`` on the server at ``pg`` (a URL without a database); its URL."""
    drop_database(pg, name)
    _admin(pg, f'CREATE DATABASE "{name}"')
    return f"{pg}/{name}"


def own_database(url: str, suffix: str) -> str:
    """The URL of a benchmark's own database next to ``url``'s (``<name><suffix>``), created if
    missing and otherwise kept: a benchmark never fills the database a developer points it at."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if not parts.scheme.startswith("postgres"):
        raise SystemExit(f"this benchmark measures PostgreSQL: set DATABASE_URL=postgres://... (got {url!r})")
    name = (parts.path.lstrip("/") or "syncadmin") + suffix
    import psycopg

    with psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(parts._replace(path=f"/{name}"))


def checkpoint(dsn: str) -> None:
    """PostgreSQL: a checkpoint just before a timed section, so that none pays for the WAL of what ran
    before it. A checkpoint that ``max_wal_size`` requests in the middle of a drain writes out every
    dirty buffer, and each page changed after it carries a full-page image in the WAL: which drain
    met one depended on how much the fill and the forms before it had written."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CHECKPOINT")


def statements_reset(dsn: str) -> bool:
    """PostgreSQL: zero pg_stat_statements before a timed section; False when the server does not load it
    (it needs ``shared_preload_libraries = 'pg_stat_statements'`` and a restart: never set by a benchmark)."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        try:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            conn.execute("SELECT pg_stat_statements_reset()")
        except psycopg.Error:
            return False
    return True


def statements_per_message(dsn: str, messages: int, top: int = 7) -> list[tuple[float, float, str]]:
    """The ``top`` statements of this database by execution time since ``statements_reset``:
    (execution µs per message, WAL bytes per message, the statement's first words)."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT total_exec_time, wal_bytes, regexp_replace(left(query, 200), '\\s+', ' ', 'g')"
            " FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " ORDER BY total_exec_time DESC LIMIT %s",
            [top],
        ).fetchall()
    return [(ms * 1000 / messages, float(wal) / messages, text[:90]) for ms, wal, text in rows]


def drop_database(pg: str, name: str) -> None:
    _admin(pg, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _admin(pg: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(f"{pg}/postgres", autocommit=True) as conn:
        conn.execute(sql)


def terminals_insert(cursor, *, prefix: str, count: int, heartbeat: bool) -> None:
    """``count`` enabled terminals ``<prefix>0001``…, in one statement (no keys: never called over SOAP)."""
    seen = "now(), 0" if heartbeat else "NULL, NULL"
    cursor.execute(
        f"""
        INSERT INTO terminals_terminal (code, name, store, enabled, api_key_hash, app_version,
            last_heartbeat_at, clock_skew_seconds, created_at, updated_at)
        SELECT %s || lpad(g::text, 4, '0'), 'Till ' || g, 'Store', true, '', '4.2', {seen}, now(), now()
        FROM generate_series(1, %s) g
        """,
        [prefix, count],
    )


def descendants(pid: int) -> list[int]:
    # Read from /proc, not `ps`: spawning a ps per process twice a second took CPU from the drain.
    kids = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids += [int(k) for k in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            pass
    return kids + [g for k in kids for g in descendants(k)]


def processes_cpu_seconds(name: str) -> float:
    """The CPU seconds (user + system) used so far by this machine's live processes called ``name``
    (``postgres``: the server's backends and its own processes), read from /proc."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        comm, seconds = _cpu(stat)
        if comm == name:
            total += seconds
    return total


def pids_cpu_seconds(pids: list[int]) -> dict[int, float]:
    """The CPU seconds (user + system) used so far by each of these live processes, from /proc."""
    return {pid: _cpu(Path(f"/proc/{pid}/stat"))[1] for pid in pids}


def _cpu(stat: Path) -> tuple[str, float]:
    """(command name, CPU seconds) of a process's /proc stat file; ("", 0) once it is gone."""
    import os

    try:
        text = stat.read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return "", 0.0
    comm, rest = text[text.index("(") + 1 : text.rindex(")")], text[text.rindex(")") + 2 :].split()
    return comm, (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime: fields 14, 15


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return 0.0


def table_updates(cursor, table: str) -> tuple[int, int]:
    """PostgreSQL: (rows updated, of them HOT: in place, no index written) of ``table`` so far.

    The counts are flushed by the backends that made them when they go idle or exit: read them
    after the workers have stopped."""
    cursor.execute("SELECT pg_stat_clear_snapshot()")
    cursor.execute("SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = %s", [table])
    row = cursor.fetchone()
    return (row[0], row[1]) if row else (0, 0)

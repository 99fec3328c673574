"""Automation API response times on a 1,000,000-message PostgreSQL table, and a rollout of 1,000 terminals
in one call (a benchmark, not a test).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/syncadmin .venv/bin/python bench/api.py

Shares bench/console.py's database (<name>_consolebench) and fill (about a minute the first time, re-used
after), so the console's own pages are timed in the same run as the reference: the message list's first
and deep page and a message's detail, through the console and through the API (a bearer token), median
of --runs calls each, server side through Django's test Client. Target: every list and detail median under 50 ms (the health
endpoint, which computes the dashboard, is reported beside the dashboard page).
Then one POST /api/v1/terminals/bulk of 1,000 terminals (all or nothing, each key once) is timed and
the terminals it made are removed again.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import console as console_bench  # noqa: E402  (sets up Django on the console bench's database)

# isort: split
from django.contrib.auth.models import Group, User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402

from messages.models import Message  # noqa: E402
from syncadmin.models import ApiToken, AuditEntry  # noqa: E402
from syncadmin.services import api_token_create  # noqa: E402
from terminals.models import Terminal  # noqa: E402

TARGET_MS = 50
ROLLOUT = 1_000


def median_ms(client: Client, url: str, runs: int, **headers) -> float:
    assert client.get(url, **headers).status_code == 200, url  # warm caches and the connection
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        response = client.get(url, **headers)
        samples.append((time.perf_counter() - t0) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("set DATABASE_URL to a PostgreSQL database (this benchmark is about PostgreSQL at scale)")
    call_command("migrate", verbosity=0)
    console_bench.fill(False)
    user, _ = User.objects.get_or_create(username="bench-api-admin")
    user.groups.add(Group.objects.get(name="Terminal admins"))
    ApiToken.objects.filter(user=user).delete()
    _, secret = api_token_create(user=user, name="bench")
    auth = {"HTTP_AUTHORIZATION": f"Bearer {secret}"}
    console = Client(HTTP_HOST="127.0.0.1")
    console.force_login(user)
    api = Client(HTTP_HOST="127.0.0.1")

    sample = Message.objects.filter(state="DeadLettered").order_by("-pk").only("pk").first()
    deep = console_bench.cursor_at(500_000)
    deep_failed = console_bench.cursor_at(5_000, "WHERE s.state = %s", ["Failed"])
    pairs = [
        ("messages, first page", "/messages/", "/api/v1/messages"),
        ("messages, deep page (row 500,000)", f"/messages/?after={deep}", f"/api/v1/messages?after={deep}"),
        ("messages, state=Failed, first page", "/messages/?state=Failed", "/api/v1/messages?state=Failed"),
        (
            "messages, state=Failed, deep page (row 5,000)",
            f"/messages/?state=Failed&after={deep_failed}",
            f"/api/v1/messages?state=Failed&after={deep_failed}",
        ),
        ("messages, terminal=T0007, first page", "/messages/?terminal=T0007", "/api/v1/messages?terminal=T0007"),
        ("message detail", f"/messages/{sample.pk}/", f"/api/v1/messages/{sample.pk}"),
        ("terminals list", "/terminals/", "/api/v1/terminals"),
        ("dead letters, grouped by reason", "/dead-letters/", "/api/v1/dead-letters/groups"),
        # Reported, not targeted: the dashboard's own figures (syncadmin/dashboard.py), whatever asks for them.
        ("(report) dashboard / health", "/", "/api/v1/health"),
    ]
    print(f"\nPostgreSQL, {Message.objects.count():,} messages; median of {args.runs} calls, server side")
    print(f"{'':44s} {'console':>10s} {'API':>10s}")
    slow = []
    for label, page, endpoint in pairs:
        page_ms = median_ms(console, page, args.runs)
        api_ms = median_ms(api, endpoint, args.runs, **auth)
        over = api_ms >= TARGET_MS and not label.startswith("(report)")
        flag = f"  <-- over {TARGET_MS} ms" if over else ""
        if over:
            slow.append(label)
        print(f"{label:44s} {page_ms:8.1f} ms {api_ms:7.1f} ms{flag}")

    rows = [{"code": f"ROLL{i:05d}", "name": f"Till {i}", "store": f"Store {i % 40}"} for i in range(ROLLOUT)]
    t0 = time.perf_counter()
    response = api.post(
        "/api/v1/terminals/bulk", json.dumps({"terminals": rows}), content_type="application/json", **auth
    )
    rollout_s = time.perf_counter() - t0
    assert response.status_code == 201, response.content[:500]
    created = response.json()["created"]
    assert len(created) == ROLLOUT and len({c["api_key"] for c in created}) == ROLLOUT
    print(f"\nrollout: {ROLLOUT:,} terminals in one call (one transaction, each key once): {rollout_s:.2f} s")
    Terminal.objects.filter(code__startswith="ROLL").delete()
    AuditEntry.objects.filter(action="terminal.create", object_id__startswith="ROLL").delete()
    print(f"\nall API medians under {TARGET_MS} ms" if not slow else f"\nover {TARGET_MS} ms: {', '.join(slow)}")


if __name__ == "__main__":
    main()

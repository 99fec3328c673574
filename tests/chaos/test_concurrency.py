"""Scenario 6: races through the real stack (gunicorn workers, separate OS processes, PostgreSQL).

- 50 concurrent SubmitMessages of one (terminal, MessageId): one row, one Accepted, 49 Duplicate.
- A double-clicked operator retry (two processes at the same instant): one state change.
- Operator retries racing live workers: every message's event chain is linear (each event
  starts from the state the previous one ended in), and whoever finishes a claim is the
  worker that made it: never two owners.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime

import pytest
import requests
from lxml import etree

from tests.chaos.conftest import LONG
from tests.chaos.harness import wait_until
from tests.terminals.helpers import SOAP_ENV, envelope, post_raw, security_header

pytestmark = pytest.mark.chaos

NS = "urn:syncadmin:terminal:v1"
HANDLERS = "tests.chaos.chaos_handlers"


def submit_xml(code, key, messages) -> str:
    items = "".join(
        f"<t:SyncMessage><t:MessageId>{m}</t:MessageId><t:MessageType>{t}</t:MessageType>"
        f"<t:EntityKey>{k}</t:EntityKey><t:Sequence>1</t:Sequence>"
        f"<t:CreatedAt>{datetime.now(UTC).isoformat()}</t:CreatedAt><t:Payload>{p}</t:Payload></t:SyncMessage>"
        for m, t, k, p in messages
    )
    return envelope(
        f"<t:SubmitMessages><t:messages>{items}</t:messages></t:SubmitMessages>", security_header(code, key)
    )


def statuses(response) -> list[str]:
    root = etree.fromstring(response.content)
    fault = root.find(f"{{{SOAP_ENV}}}Body/{{{SOAP_ENV}}}Fault")
    if fault is not None:
        return ["fault:" + fault.findtext("faultcode")]
    return [e.text for e in root.iter(f"{{{NS}}}Status")]


def test_fifty_concurrent_submissions_of_one_message_store_one_row(stack, record):
    web = stack.start_web(workers=4)
    url = stack.soap_url(web)
    code, key = stack.create_terminals(1).popitem()
    rounds = 20 if LONG else 4
    for r in range(rounds):
        mid = f"same-{r}-{uuid.uuid4().hex[:6]}"
        body = submit_xml(code, key, [(mid, "stock.upsert", "SKU-1", "{}")]).encode()
        barrier = threading.Barrier(50)
        answers = []

        def send(body=body, barrier=barrier, answers=answers):
            with requests.Session() as s:
                barrier.wait()
                resp = s.post(url, data=body, headers={"Content-Type": "text/xml; charset=utf-8"}, timeout=60)
                answers.extend(statuses(resp))

        threads = [threading.Thread(target=send) for _ in range(50)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(90)
        assert Counter(answers) == {"Accepted": 1, "Duplicate": 49}, Counter(answers)
        rows = stack.scalar("SELECT count(*) FROM queue_messages_message WHERE message_id = %s", (mid,))
        events = stack.scalar(
            "SELECT count(*) FROM queue_messages_messageevent e JOIN queue_messages_message m ON m.id = e.message_id"
            " WHERE m.message_id = %s AND e.to_state = 'Received'",
            (mid,),
        )
        assert rows == 1 and events == 1, (rows, events)


RETRY_AT = """
import json, time
from messages.models import Message
from messages.services import message_retry
ids = list(Message.objects.filter(state__in=["DeadLettered", "Failed"]).values_list("pk", flat=True))
time.sleep(max(0, {at} - time.time()))
print(json.dumps(message_retry(message_ids=ids, actor="user:{who}", reason="double click")))
"""


def test_double_clicked_retry_in_two_processes_changes_state_once(stack):
    web = stack.start_web(workers=1)
    code, key = stack.create_terminals(1).popitem()
    n = 200
    body = submit_xml(code, key, [(f"bad-{i}", "promo.apply", f"K{i}", "{}") for i in range(n)])
    assert statuses(post_raw(stack.soap_url(web), body)) == ["Accepted"] * n
    cluster = stack.start_cluster()
    assert wait_until(
        lambda: stack.scalar("SELECT count(*) FROM queue_messages_messagestate WHERE state = 'DeadLettered'") == n, 90
    )
    cluster.kill_group()  # no worker: the retried messages stay Received for counting
    at = time.time() + 4  # both "clicks" fire at the same instant, from two OS processes
    results, threads = [], []
    for who in ("alice", "bob"):
        t = threading.Thread(
            target=lambda who=who: results.append(json.loads(stack.python(RETRY_AT.format(at=at, who=who)).strip()))
        )
        t.start()
        threads.append(t)
    for t in threads:
        t.join(60)
    assert sorted(results) == [0, n], results
    per_message = stack.query(
        "SELECT message_id, count(*) FROM queue_messages_messageevent WHERE to_state = 'Received' AND from_state <> ''"
        " GROUP BY message_id"
    )
    assert len(per_message) == n and {c for _, c in per_message} == {1}


OPERATOR_LOOP = """
import json, time
from messages.models import Message
from messages.services import message_retry
changed, end = 0, time.time() + {seconds}
while time.time() < end:
    ids = list(Message.objects.filter(state__in=["Failed", "DeadLettered"]).values_list("pk", flat=True)[:200])
    changed += message_retry(message_ids=ids, actor="user:operator", reason="race") if ids else 0
    time.sleep(0.05)
print(json.dumps(changed))
"""


def test_operator_retry_racing_workers_never_yields_two_owners(stack, record):
    stack.settings.update(SYNC_HANDLER_MODULES=HANDLERS, SYNC_MAX_ATTEMPTS="4", SYNC_BACKOFF_BASE_SECONDS="0.2")
    web = stack.start_web(workers=1)
    code, key = stack.create_terminals(1).popitem()
    n = 300
    body = submit_xml(code, key, [(f"flaky-{i}", "flaky.upsert", f"F{i}", "{}") for i in range(n)])
    assert statuses(post_raw(stack.soap_url(web), body)) == ["Accepted"] * n
    clusters = [stack.start_cluster() for _ in range(2)]
    retried = json.loads(stack.python(OPERATOR_LOOP.format(seconds=60 if LONG else 15)).strip())
    assert wait_until(lambda: stack.backlog() == 0, 150), stack.backlog()
    # once the operator stops, every flaky message gets through on its third attempt
    assert stack.scalar("SELECT count(*) FROM queue_messages_messagestate WHERE state = 'Processed'") == n
    events = stack.query(
        "SELECT message_id, from_state, to_state, actor FROM queue_messages_messageevent ORDER BY message_id, at, id"
    )
    broken, wrong_owner, claims = [], [], 0
    chain: dict[int, tuple[str, str]] = {}  # message -> (state, owner)
    for message_id, frm, to, actor in events:
        state, owner = chain.get(message_id, ("", ""))
        if frm != state:
            broken.append((message_id, state, frm, to))
        if frm == "Processing" and to != "Processing" and not actor.startswith(("sweeper", "user:")) and actor != owner:
            wrong_owner.append((message_id, owner, actor))
        if to == "Processing":
            claims += 1
            owner = actor
        chain[message_id] = (to, owner)
    done = Counter(m for m, _, to, _ in events if to == "Processed")
    assert not broken, broken[:5]
    assert not wrong_owner, wrong_owner[:5]
    assert set(done.values()) == {1} and len(done) == n
    print(f"[chaos:6-operator-race] messages={n} operator_retries={retried} claims={claims} clusters={len(clusters)}")
    assert retried > 0  # the race really happened

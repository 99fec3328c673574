"""/metrics: stable names and labels, values after a known sequence, protection, the counters."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.db.models import Count
from prometheus_client.parser import text_string_to_metric_families

from messages import services
from messages.handlers import registry
from messages.metrics import message_state_counts
from messages.models import Message, MessageState
from reconciliation.alerts import incidents
from reconciliation.terminal_health import terminal_health_snapshot_write
from syncadmin.lib.counters import (
    metric_counter_add,
    metric_counter_totals,
    metric_counters_fold,
)
from syncadmin.models import MetricCounter
from terminals.services import terminal_create
from terminals.soap.observed import soap_request_observed
from tests.factories import AlertRuleFactory, MetricSampleFactory, QueuePauseFactory, TerminalFactory
from tests.messages.helpers import drain_all, env, make_due
from tests.terminals.helpers import envelope, security_header

S = MessageState
pytestmark = pytest.mark.django_db
TOKEN = "s3cret-scrape-token"


@pytest.fixture
def scrape(client, settings):
    settings.SYNC_METRICS_TOKEN = TOKEN
    settings.SYNC_METRICS_ALLOWED_IPS = []

    def get() -> dict[tuple[str, tuple], float]:
        response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
        assert response.status_code == 200, response.content
        assert response["Content-Type"].startswith("text/plain; version=0.0.4")
        samples = {}
        for family in text_string_to_metric_families(response.content.decode()):
            for s in family.samples:
                samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return samples

    return get


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))))


@pytest.fixture
def flaky():
    @registry.register("flaky.upsert")
    def handler(item):
        raise ConnectionResetError("upstream reset")

    yield
    registry.unregister("flaky.upsert")


def known_sequence(terminal, settings):
    """3 good products (one a no-op), 1 bad JSON, 1 unknown type, 1 flaky that fails twice."""
    settings.SYNC_MAX_ATTEMPTS = 2
    services.message_ingest_batch(
        terminal=terminal,
        envelopes=[
            env("a", "A", seq=2),
            env("b", "B"),
            env("a-old", "A", seq=1),
            services.Envelope("bad", "product.upsert", "K", 1, datetime.now(UTC), "{not json"),
            env("odd", mtype="gizmo.frobnicate"),
            env("f", "F", mtype="flaky.upsert"),
        ],
    )
    drain_all()  # a, b processed; a-old no-op; bad, odd dead-lettered; f failed (attempt 1)
    make_due(Message.objects.get(message_id="f"))
    drain_all()  # f dead-lettered (attempt 2)


def test_metric_values_and_labels_after_a_known_sequence(terminal, settings, scrape, flaky):
    terminal.last_heartbeat_at = datetime.now(UTC)
    terminal.save()
    TerminalFactory(code="T-OFF", last_heartbeat_at=datetime.now(UTC) - timedelta(hours=2))
    TerminalFactory(code="T-DIS", enabled=False)
    known_sequence(terminal, settings)
    services.message_ingest_batch(terminal=terminal, envelopes=[env("waiting", "W")])  # backlog of one
    terminal_health_snapshot_write()  # what the once-a-minute sample does

    m = scrape()
    assert value(m, "syncadmin_messages", state="Processed") == 3
    assert value(m, "syncadmin_messages", state="DeadLettered") == 3
    assert value(m, "syncadmin_messages", state="Received") == 1
    for state in ("Processing", "Failed", "Discarded"):
        assert value(m, "syncadmin_messages", state=state) == 0
    assert value(m, "syncadmin_message_transitions_total", from_state="new", to_state="Received") == 7
    assert value(m, "syncadmin_message_transitions_total", from_state="Processing", to_state="Failed") == 1
    assert value(m, "syncadmin_message_transitions_total", from_state="Failed", to_state="Processing") == 1
    assert value(m, "syncadmin_backlog_messages") == 1
    assert 0 <= value(m, "syncadmin_backlog_oldest_age_seconds") < 60
    assert 0 <= value(m, "syncadmin_backlog_overdue_seconds") < 60

    outcomes = {
        (lab["message_type"], lab["outcome"]): v
        for (name, labels), v in m.items()
        if name == "syncadmin_message_outcomes_total"
        for lab in [dict(labels)]
    }
    assert outcomes == {
        ("product.upsert", "processed"): 2,
        ("product.upsert", "noop"): 1,
        ("product.upsert", "dead_lettered"): 1,
        ("unhandled", "dead_lettered"): 1,
        ("flaky.upsert", "failed"): 1,
        ("flaky.upsert", "dead_lettered"): 1,
    }
    assert value(m, "syncadmin_message_attempts_total", message_type="product.upsert") == 4
    assert value(m, "syncadmin_message_attempts_total", message_type="flaky.upsert") == 2
    assert value(m, "syncadmin_dead_letters_total", reason="PermanentError") == 2
    assert value(m, "syncadmin_dead_letters_total", reason="ConnectionResetError") == 1
    assert value(m, "syncadmin_dead_letters_open", reason="PermanentError") == 2
    assert value(m, "syncadmin_dead_letters_open", reason="ConnectionResetError") == 1

    # histograms: cumulative buckets ending in +Inf == count, one observation per attempt
    assert value(m, "syncadmin_message_processing_seconds_count", message_type="product.upsert") == 4
    assert value(m, "syncadmin_message_processing_seconds_bucket", message_type="product.upsert", le="+Inf") == 4
    assert value(m, "syncadmin_message_processing_seconds_sum", message_type="product.upsert") > 0
    buckets = sorted(
        (float(dict(labels)["le"]), v)
        for (name, labels), v in m.items()
        if name == "syncadmin_message_processing_seconds_bucket" and dict(labels)["message_type"] == "product.upsert"
    )
    assert [v for _, v in buckets] == sorted(v for _, v in buckets)  # cumulative
    assert value(m, "syncadmin_message_latency_seconds_count", message_type="product.upsert") == 3  # applied + no-op
    assert value(m, "syncadmin_message_latency_seconds_count", message_type="flaky.upsert") is None

    assert value(m, "syncadmin_terminals", status="online") == 1
    assert value(m, "syncadmin_terminals", status="offline") == 1
    assert value(m, "syncadmin_terminals", status="disabled") == 1
    assert sum(value(m, "syncadmin_terminals_health", health=h) for h in ("healthy", "degraded", "failing")) == 3
    assert value(m, "syncadmin_terminal_health", terminal="T-OFF") == 2  # no heartbeat for 2 hours: failing
    assert value(m, "syncadmin_worker_heartbeat_age_seconds") == -1  # no sample written yet


def test_active_pauses_are_a_gauge_by_scope(scrape):
    assert value(scrape(), "syncadmin_queue_pauses", scope="message_type") == 0
    QueuePauseFactory(value="price.upsert")
    QueuePauseFactory(value="stock.upsert")
    QueuePauseFactory(scope="entity_type", value="promo")
    m = scrape()
    assert value(m, "syncadmin_queue_pauses", scope="message_type") == 2
    assert value(m, "syncadmin_queue_pauses", scope="entity_type") == 1
    assert value(m, "syncadmin_queue_pauses", scope="terminal") == 0


def test_soap_requests_are_counted_by_operation_and_fault(scrape):
    before = scrape()
    soap_request_observed("SubmitMessages", None, 0.02)
    soap_request_observed("SubmitMessages", None, 0.03)
    soap_request_observed("Heartbeat", "Client.AuthenticationFailed", 0.001)
    soap_request_observed("Nonsense", "Client.Whatever", 0.001)
    after = scrape()

    def delta(name, **labels):
        return (value(after, name, **labels) or 0) - (value(before, name, **labels) or 0)

    assert delta("syncadmin_soap_requests_total", operation="SubmitMessages", fault_code="none") == 2
    assert delta("syncadmin_soap_requests_total", operation="Heartbeat", fault_code="Client.AuthenticationFailed") == 1
    assert delta("syncadmin_soap_requests_total", operation="other", fault_code="other") == 1
    assert delta("syncadmin_soap_request_seconds_count", operation="SubmitMessages") == 2
    assert delta("syncadmin_soap_request_seconds_bucket", operation="SubmitMessages", le="0.025") == 1


def test_a_soap_call_through_the_endpoint_is_counted_once(client, scrape):
    """Once by its operation, not again as "other" by the view (which counts only the calls refused
    before an operation ran): spyne runs the call on a copy of request.META."""
    terminal, key = terminal_create(code="T-COUNT")
    before = scrape()
    body = "<t:Heartbeat><t:info><t:AppVersion>1.0</t:AppVersion></t:info></t:Heartbeat>"
    response = client.post(
        "/soap/terminal/v1/", envelope(body, security_header(terminal.code, key)), content_type="text/xml"
    )
    assert response.status_code == 200, response.content
    after = scrape()
    counted = {
        labels: v - (before.get((name, labels)) or 0)
        for (name, labels), v in after.items()
        if name == "syncadmin_soap_requests_total" and v != (before.get((name, labels)) or 0)
    }
    assert counted == {(("fault_code", "none"), ("operation", "Heartbeat")): 1}


def test_state_counters_match_a_full_count_through_every_kind_of_change(terminal, settings, flaky):
    known_sequence(terminal, settings)
    services.message_ingest_batch(terminal=terminal, envelopes=[env(f"n{i}", f"N{i}") for i in range(5)])
    dead = list(Message.objects.filter(state=S.DEAD_LETTERED).values_list("pk", flat=True))
    services.message_retry(message_ids=dead[:2], actor="user:ann")
    services.message_discard(message_ids=dead[2:], actor="user:ann", reason="junk")
    services.message_discard(
        message_ids=list(Message.objects.filter(message_id__in=["n0", "n1"]).values_list("pk", flat=True)),
        actor="user:ann",
        reason="junk",
    )
    claimed = services.message_claim(worker="w", limit=2)  # left Processing
    assert claimed

    def real():
        counts = dict(Message.objects.values_list("state").annotate(n=Count("pk")).order_by())
        return {s: counts.get(s, 0) for s in S.values}

    assert message_state_counts() == real()
    deltas = MetricCounter.objects.filter(base=False).count()
    assert deltas > 0
    folded = metric_counters_fold()
    assert folded and MetricCounter.objects.filter(base=False).count() == 0
    assert message_state_counts() == real()  # folding changes no total
    assert metric_counters_fold() == {}  # each delta is folded once


def test_the_fold_takes_every_delta_in_chunks_and_keeps_the_totals():
    """Regression: the fold took 50,000 deltas a run, fewer than a draining backlog writes in a
    minute, so the table grew while it drained; and it read them into the worker's memory. It
    now folds chunk after chunk until none are left (PostgreSQL sums them in the DELETE)."""
    metric_counter_add(rows=[("c_total", {"k": str(i % 3)}, i + 1) for i in range(10)])
    metric_counter_add(rows=[("d_total", None, 0.5)] * 2)
    before = metric_counter_totals()
    folded = metric_counters_fold(chunk=3)  # 12 rows: four transactions
    assert folded == {
        ("c_total", '{"k":"0"}'): 1 + 4 + 7 + 10,
        ("c_total", '{"k":"1"}'): 2 + 5 + 8,
        ("c_total", '{"k":"2"}'): 3 + 6 + 9,
        ("d_total", ""): 1.0,
    }
    assert MetricCounter.objects.filter(base=False).count() == 0
    assert MetricCounter.objects.filter(base=True).count() == 4  # one base row per series
    assert metric_counter_totals() == before
    # A second fold adds to the base rows; ``limit`` stops a run part-way (the rest waits).
    metric_counter_add(rows=[("c_total", {"k": "0"}, 1)] * 5)
    assert metric_counters_fold(chunk=2, limit=3) == {("c_total", '{"k":"0"}'): 3}
    assert MetricCounter.objects.filter(base=False).count() == 2
    assert metric_counters_fold() == {("c_total", '{"k":"0"}'): 2}
    assert metric_counter_totals()["c_total"]['{"k":"0"}'] == 22 + 5


def test_a_rolled_back_batch_counts_nothing(terminal):
    services.message_ingest_batch(terminal=terminal, envelopes=[env("a", "A")])
    batch = services.message_claim(worker="slow", limit=10)
    before = message_state_counts()
    Message.objects.update(lease_owner="other")  # the lease was lost: the batch rolls back
    with pytest.raises(services.IllegalTransition):
        services.message_process_batch(messages=batch, worker="slow")
    assert message_state_counts() == before
    assert not MetricCounter.objects.filter(name="message_outcomes").exists()


def test_a_claim_and_a_batch_each_write_their_metric_deltas_in_one_insert(terminal, settings):
    """The hot path gathers every delta of its transaction (transitions, outcomes, timings) into
    one INSERT, and the totals are what the per-call writes gave."""
    settings.SYNC_MAX_ATTEMPTS = 1
    services.message_ingest_batch(
        terminal=terminal,
        envelopes=[env("ok", "A"), env("bad", "B", payload="[1]"), env("unknown", "C", mtype="promo.apply")],
    )
    inserts = []

    def spy(execute, sql, params, many, context):
        # On PostgreSQL the claim's INSERT is a part of its one statement (a CTE).
        if f"INSERT INTO {MetricCounter._meta.db_table}" in sql:
            inserts.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(spy):
        batch = services.message_claim(worker="w1", limit=10)
        assert len(inserts) == 1
        services.message_process_batch(messages=batch, worker="w1")
    assert len(inserts) == 2  # one for the claim, one for the whole batch
    counts = message_state_counts()
    assert counts[S.PROCESSED] == 1 and counts[S.DEAD_LETTERED] == 2 and counts[S.PROCESSING] == 0
    totals = MetricCounter.objects.filter(name="message_outcomes").values_list("value", flat=True)
    assert sum(totals) == 3
    claimed = MetricCounter.objects.filter(
        name="message_transitions", labels='{"from":"Received","to":"Processing"}'
    ).values_list("value", flat=True)
    assert list(claimed) == [3]


# --- protection ----------------------------------------------------------------------------------


def test_metrics_refuse_everyone_when_not_configured(client, settings):
    settings.SYNC_METRICS_TOKEN, settings.SYNC_METRICS_ALLOWED_IPS = "", []
    response = client.get("/metrics")
    assert response.status_code == 403
    assert b"syncadmin_" not in response.content


def test_metrics_token(client, settings):
    settings.SYNC_METRICS_TOKEN, settings.SYNC_METRICS_ALLOWED_IPS = TOKEN, []
    assert client.get("/metrics").status_code == 401
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer nope")
    assert wrong.status_code == 401 and wrong["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Basic {TOKEN}").status_code == 401
    ok = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert ok.status_code == 200 and b"syncadmin_messages" in ok.content
    assert client.post("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 405


def test_metrics_ip_allow_list_and_both(client, settings):
    settings.SYNC_METRICS_TOKEN, settings.SYNC_METRICS_ALLOWED_IPS = "", ["10.1.0.0/16", "192.0.2.7"]
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="192.0.2.7").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="10.2.0.1").status_code == 403
    # a forwarded-for header is not trusted
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR="10.1.2.3").status_code == 403
    settings.SYNC_METRICS_TOKEN = TOKEN  # both set: both required
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 401
    assert client.get("/metrics", REMOTE_ADDR="10.2.0.1", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200


def test_metrics_ip_allow_list_behind_the_proxy(client, settings):
    """Behind nginx every request comes from the proxy's address: the allow-list must see the client."""
    settings.SYNC_TRUSTED_PROXIES = ["127.0.0.1"]
    settings.SYNC_METRICS_TOKEN, settings.SYNC_METRICS_ALLOWED_IPS = "", ["10.1.0.0/16", "127.0.0.1"]
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="10.1.2.3").status_code == 200
    # the proxy's own address on the list lets nobody through it
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.9").status_code == 403
    # a client's own X-Forwarded-For, kept by an appending proxy, is not read
    forged = "10.1.2.3, 203.0.113.9"
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR=forged).status_code == 403
    # nor when the client reaches gunicorn directly
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR="10.1.2.3").status_code == 403
    # a probe on the proxy host itself is the proxy's address
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200


def test_open_alert_incidents_are_counted_by_rule(scrape):
    rule = AlertRuleFactory(kind="workers_gone", threshold=5, enabled=True)
    for kind in ("terminal_offline", "terminal_no_sales", "backlog_overdue", "dead_letter_rate"):
        AlertRuleFactory(kind=kind, enabled=False)
    assert value(scrape(), "syncadmin_alert_incidents_open", rule="workers_gone") == 0
    now = datetime.now(UTC)
    MetricSampleFactory(at=now - timedelta(minutes=30))
    assert [i.rule for i in incidents.alerts_evaluate(now=now).opened] == [rule]
    samples = scrape()
    assert value(samples, "syncadmin_alert_incidents_open", rule="workers_gone") == 1
    assert value(samples, "syncadmin_alert_incidents_open", rule="terminal_offline") == 0

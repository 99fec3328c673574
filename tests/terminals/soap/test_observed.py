"""Real SOAP calls are counted in /metrics by operation and fault, and carry their trace id."""

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from messages.models import Message

TOKEN = "scrape-token"


@pytest.fixture
def scrape(client, settings):
    settings.SYNC_METRICS_TOKEN, settings.SYNC_METRICS_ALLOWED_IPS = TOKEN, []

    def get(name, **labels) -> float:
        body = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()
        for family in text_string_to_metric_families(body):
            for s in family.samples:
                if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                    return s.value
        return 0.0

    return get


def test_soap_calls_are_counted_by_operation_and_fault(term_a, zeep_client, soap_url, scrape):
    terminal, key = term_a
    ok = ("syncadmin_soap_requests_total", {"operation": "SubmitMessages", "fault_code": "none"})
    auth = ("syncadmin_soap_requests_total", {"operation": "Heartbeat", "fault_code": "Client.AuthenticationFailed"})
    bad = ("syncadmin_soap_requests_total", {"operation": "other", "fault_code": "Client.InvalidRequest"})
    before = {k[0] + str(k[1]): scrape(k[0], **k[1]) for k in (ok, auth, bad)}

    message = {"MessageId": "obs-1", "MessageType": "product.upsert", "EntityKey": "K", "Sequence": 1,
               "CreatedAt": "2026-01-01T00:00:00Z", "Payload": "{}"}  # fmt: skip
    zeep_client(terminal.code, key).service.SubmitMessages(messages={"SyncMessage": [message]})
    with pytest.raises(Exception, match="authentication"):
        zeep_client(terminal.code, "wrong-key").service.Heartbeat(info={"AppVersion": "1"})
    r = requests.post(soap_url, data=b"<not-xml", headers={"Content-Type": "text/xml"}, timeout=10)
    assert r.status_code == 500 and b"Client.InvalidRequest" in r.content

    for k in (ok, auth, bad):
        assert scrape(k[0], **k[1]) == before[k[0] + str(k[1])] + 1, k
    # the call's trace id is the one stored on the message it ingested
    assert len(Message.objects.get(message_id="obs-1").trace_id) == 32

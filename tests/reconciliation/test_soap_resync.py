"""End to end through the terminal SOAP API with zeep: a terminal reports counts, the run finds
the gap, staff request a resync, and the terminal receives it with FetchUpdates.
"""

import json
from datetime import UTC, datetime, timedelta

import pytest

from reconciliation import services
from reconciliation.models import Discrepancy, RunTrigger
from tests.reconciliation.helpers import drain_all


@pytest.fixture
def soap_terminal(live_server, transactional_db):
    from zeep import Client, Settings
    from zeep.wsse.username import UsernameToken

    from terminals.services import terminal_create

    terminal, key = terminal_create(code="TR1")
    client = Client(
        live_server.url + "/soap/terminal/v1/?wsdl", wsse=UsernameToken("TR1", key), settings=Settings(strict=True)
    )
    yield terminal, client
    client.transport.session.close()


def test_resync_request_reaches_the_terminal_through_soap(soap_terminal):
    terminal, client = soap_terminal
    made = datetime.now(UTC) - timedelta(minutes=2)
    results = client.service.SubmitMessages(
        messages={
            "SyncMessage": [
                {
                    "MessageId": f"m{i}",
                    "MessageType": "product.upsert",
                    "EntityKey": f"SKU-{i}",
                    "Sequence": 1,
                    "CreatedAt": made,
                    "Payload": json.dumps({"name": f"item {i}"}),
                }
                for i in range(2)
            ]
        }
    )
    assert [r.Status for r in results] == ["Accepted", "Accepted"]
    reply = client.service.ReportCounts(
        counts={"EntityCount": [{"EntityType": "product", "Count": 5, "AsOf": datetime.now(UTC)}]}
    )
    assert getattr(reply, "Received", reply) == 1  # zeep unwraps a one-field reply
    drain_all()
    run = services.run_now(trigger=RunTrigger.COMMAND, triggered_by="test")
    gap = Discrepancy.objects.get(run=run, terminal_code="TR1", entity_type="product")
    assert (gap.kind, gap.terminal_count, gap.central_count, gap.delta) == ("gap", 5, 2, 3)

    services.resync_request(terminal=terminal, entity_type="product", actor="user:sue", reason="gap of 3")
    updates = client.service.FetchUpdates(maxCount=10)
    assert [(u.UpdateType, u.EntityKey) for u in updates] == [("resync.request", "product")]
    assert json.loads(updates[0].Payload)["entity_type"] == "product"
    ack = client.service.AckUpdates(updateIds={"string": [updates[0].UpdateId]})
    assert getattr(ack, "Acknowledged", ack) == 1
    assert not client.service.FetchUpdates(maxCount=10)

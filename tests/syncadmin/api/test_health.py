"""Health through the API: what the dashboard shows."""

from datetime import UTC, datetime, timedelta

import pytest

from messages.models import MessageState
from tests.factories import DeadLetterFactory, MessageFactory, TerminalFactory

pytestmark = pytest.mark.django_db


def test_backlog_states_and_terminals(api_as):
    old = datetime.now(UTC) - timedelta(minutes=10)
    MessageFactory(state=MessageState.RECEIVED, received_at=old)
    MessageFactory(state=MessageState.FAILED)
    DeadLetterFactory()
    TerminalFactory(code="ON", last_heartbeat_at=datetime.now(UTC))
    TerminalFactory(code="OFF", enabled=False)
    body = api_as("Viewers").get("/health").json()
    assert body["backlog"] == 2 and body["dead_letters_open"] == 1
    assert body["states"]["Received"] == 1 and body["states"]["DeadLettered"] == 1
    assert body["oldest_backlog_seconds"] >= 600
    assert body["terminals_online"] == 1 and body["terminals_disabled"] == 1
    assert body["terminals_total"] == body["terminals_online"] + body["terminals_offline"] + body["terminals_disabled"]

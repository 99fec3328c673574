"""Text a terminal (or anyone typing a URL) controls is shown as text on every console page, never as markup.

Terminals choose their message ids, types, entity keys, payloads, entity types in count reports and
their app version; dead-letter reasons and groups quote them back. Each of those fields holds markup
here, and every console page of the URLconf (tests/console_pages.py), as a page and as an htmx
fragment, with the markup also in its query string, must show it escaped. (The CSP is the second
line: tests/syncadmin/test_security_headers.py.)
"""

import json
from datetime import UTC, datetime

import pytest

from messages.models import Message, MessageState
from messages.services import Envelope
from reconciliation import reports
from terminals.services import terminal_heartbeat
from tests.console_pages import console_objects, console_pages
from tests.factories import TerminalFactory
from tests.reconciliation.helpers import drain_all, ingest

pytestmark = pytest.mark.django_db

MARKUP = ["<img src=x onerror=alert(1)>", "\"'><svg/onload=alert(2)>", "<script>alert(3)</script>"]
QUERY = {name: MARKUP[0] for name in ("q", "entity_key", "message_type", "entity_type", "error", "terminal", "sort")}


@pytest.fixture
def hostile_pages(db):
    objects = console_objects()
    terminal = TerminalFactory(code="XSS-T1", name=MARKUP[0], store=MARKUP[1])
    terminal_heartbeat(terminal=terminal, app_version=MARKUP[2], local_backlog=1, terminal_time=datetime.now(UTC))
    terminal.save()
    envelopes = [
        # A type with no handler: dead-lettered with a reason (and a group) that quotes the type.
        Envelope(mark, f"{mark}.upsert", mark, 1, datetime.now(UTC), json.dumps({"name": mark}))
        for mark in MARKUP
    ]
    ingest(terminal, *envelopes)
    drain_all()
    reports.reported_counts_store(terminal=terminal, counts=[(MARKUP[0], 3, datetime.now(UTC))])
    dead = Message.objects.filter(terminal=terminal, state=MessageState.DEAD_LETTERED)
    assert dead.count() == len(MARKUP)
    objects.update(message=dead.first().pk, terminal=terminal.pk)
    return console_pages(objects)


def test_no_console_page_renders_terminal_or_url_text_as_markup(login_as, hostile_pages):
    client = login_as("superuser")
    checked = 0
    for page in hostile_pages:
        for query in ({}, QUERY):
            for headers in ({}, {"HX-Request": "true"}):
                response = client.get(page.url, query, headers=headers)
                body = b"".join(response.streaming_content) if response.streaming else response.content
                if not response.get("Content-Type", "").startswith("text/html"):
                    continue
                text = body.decode("utf-8", "replace")
                for mark in MARKUP:
                    assert mark not in text, (page.url, query, headers, mark)
                checked += 1
    assert checked > 60

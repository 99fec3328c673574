"""Failure-group triage and superseded dead letters in a real browser (issue 20).

The screenshots are the support guide's (docs/support.md): they are written to docs/img/.
"""

import shutil
from datetime import UTC, datetime

import pytest
from django.conf import settings

from messages import services
from messages.models import CentralEntity, DeadLetterGroupEvent, DeadLetterGroupNote, Message, MessageState
from messages.services import Envelope
from tests.browser import test_console
from tests.browser.test_console import CHROMIUM, finish, login
from tests.factories import DeadLetterFactory, UserFactory
from tests.messages.helpers import drain_all

S = MessageState
pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.skipif(not shutil.which(CHROMIUM), reason="Debian's chromium is not installed"),
]
PRICE = "ValueError: price # is negative"
# The console tests' fixtures: the browser, and the small lifelike hub with sam (Support) and alice.
browser, world = test_console.browser, test_console.world


def doc_shot(page, name: str, full_page: bool = True) -> None:
    path = settings.BASE_DIR / "docs" / "img" / name
    page.screenshot(path=str(path), full_page=full_page)


def test_take_triage_hold_and_a_recurrence_of_a_failure_group(browser, live_server, world):
    page = login(browser, live_server, "sam")
    page.set_default_timeout(8_000)
    page.goto(f"{live_server.url}/dead-letters/")
    rows = page.locator("#group-table tbody tr")
    assert rows.count() == 2
    assert rows.filter(has_text=PRICE).locator(".badge.tri-new").count() == 1

    # Take it, from the list: sam owns the group, which is now under investigation.
    rows.filter(has_text=PRICE).locator("button[data-take]").click()
    page.wait_for_selector("#group-table .owner")
    assert "sam" in rows.filter(has_text=PRICE).inner_text()
    page.select_option("select[name=owner]", "mine")
    page.click("#group-filters button[type=submit]")
    page.wait_for_function("() => new URL(location.href).searchParams.get('owner') === 'mine'")
    assert page.locator("#group-table tbody tr").count() == 1
    doc_shot(page, "triage-list.png")

    # The group's page: put it on hold with a ticket and a note; a bad link is a form error first.
    page.locator("#group-table tbody tr a:text-is('Triage…')").click()
    page.wait_for_selector("#triage-form")
    page.select_option("#triage-form select[name=status]", "on_hold")
    page.fill("#triage-form input[name=ticket_url]", "ftp://tickets.example/OPS-42")
    page.fill("#triage-form textarea[name=note]", "HQ price list has negative prices; waiting for the fix")
    page.click("#triage-form button[type=submit]")
    page.wait_for_selector("#ticket-error")
    page.fill("#triage-form input[name=ticket_url]", "https://tickets.example/OPS-42")
    page.click("#triage-form button[type=submit]")
    page.wait_for_function("() => document.getElementById('triage-status').textContent.trim() === 'On hold'")
    assert page.locator("#history tbody tr").count() == 2  # taken, then put on hold
    doc_shot(page, "triage-group.png")
    triage = DeadLetterGroupNote.objects.get(grouping="reason", key=PRICE)
    assert (triage.owner, triage.status, triage.ticket_url) == ("sam", "on_hold", "https://tickets.example/OPS-42")
    page.goto(f"{live_server.url}/dead-letters/?status=on_hold")
    assert page.locator("#group-table tbody tr").count() == 1

    # A terminal's group marked fixed comes back as new when a new dead letter lands in it.
    terminal = world["terminals"][0]
    page.goto(f"{live_server.url}/dead-letters/group/?by=terminal&key={terminal.code}")
    page.select_option("#triage-form select[name=status]", "fixed")
    page.click("#triage-form button[type=submit]")
    page.wait_for_function("() => document.getElementById('triage-status').textContent.includes('Fixed')")
    services.message_ingest_batch(
        terminal=terminal, envelopes=[Envelope("recur-1", "product.upsert", "SKU-R", 1, datetime.now(UTC), "{bad")]
    )
    drain_all()
    assert DeadLetterGroupEvent.objects.filter(kind="recurred", key=terminal.code).count() == 1
    page.reload()
    assert page.inner_text("#triage-status").strip() == "New"
    assert page.locator("#history tr.ev-recurred").count() == 1
    doc_shot(page, "triage-recurred.png")
    finish(page)


def test_viewer_sees_the_triage_but_no_control(browser, live_server, world):
    UserFactory(username="vic", group="Viewers", password="correct horse battery staple")
    page = login(browser, live_server, "vic")
    page.goto(f"{live_server.url}/dead-letters/")
    assert page.locator("#group-table button").count() == 0
    page.locator("#group-table a:text-is('Triage…')").first.click()
    page.wait_for_selector("#history")
    assert page.locator("#triage-form, #take-it, #discard-superseded").count() == 0
    finish(page)


def test_discard_the_superseded_ones_of_a_group_and_of_a_selection(browser, live_server, world):
    # Two of the four "price" dead letters are older than what the central store holds for their entity.
    for d in world["dead"][:2]:
        m = d.message
        CentralEntity.objects.create(
            entity_type=m.entity_type, entity_key=m.entity_key, terminal_code=m.terminal.code, data={},
            last_sequence=m.sequence + 4, updated_at=datetime.now(UTC),
        )  # fmt: skip
    page = login(browser, live_server, "sam")
    page.set_default_timeout(8_000)
    page.goto(f"{live_server.url}/dead-letters/")
    row = page.locator("#group-table tbody tr").filter(has_text=PRICE)
    assert row.locator(".badge.superseded").inner_text() == "2"
    doc_shot(page, "superseded-groups.png")
    row.locator("button[data-superseded]").click()
    page.wait_for_selector("#superseded-count")
    assert "discard 2 superseded dead letters" in page.inner_text("#superseded-count")
    reason = page.input_value("#superseded-confirm input[name=reason]")
    assert reason.startswith("superseded: the entity already holds sequence 5 from the same terminal")
    doc_shot(page, "superseded-confirm.png")
    page.click("#superseded-confirm button[type=submit]")
    page.wait_for_selector("#superseded-result")
    assert "Discarded 2 superseded dead letters" in page.inner_text("#superseded-result")
    gone = [d.message.pk for d in world["dead"][:2]]
    assert Message.objects.filter(pk__in=gone, state=S.DISCARDED).count() == 2
    assert Message.objects.filter(pk__in=[d.message.pk for d in world["dead"][2:]], state=S.DEAD_LETTERED).count() == 2

    # From the message list: the badge, then a selection of which only the superseded one goes.
    late = DeadLetterFactory(message__terminal=world["terminals"][3], message__entity_key="SKU-LATE").message
    CentralEntity.objects.create(
        entity_type="product", entity_key="SKU-LATE", terminal_code=late.terminal.code, data={}, last_sequence=1,
        updated_at=datetime.now(UTC),
    )  # fmt: skip
    page.goto(f"{live_server.url}/messages/?state=DeadLettered")
    assert page.locator("#message-table .badge.superseded").count() == 1
    page.locator("#message-table tbody input[name=select]").nth(0).check()
    page.locator("#message-table tbody input[name=select]").nth(1).check()
    page.click("#discard-superseded")
    page.wait_for_selector("#superseded-count")
    assert "discard 1 superseded dead letter " in page.inner_text("#superseded-count")
    doc_shot(page, "superseded-messages.png", full_page=False)
    page.click("#superseded-confirm button[type=submit]")
    page.wait_for_selector("#superseded-result")
    assert Message.objects.get(pk=late.pk).state == S.DISCARDED
    finish(page)

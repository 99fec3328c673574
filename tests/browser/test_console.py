"""The console in a real browser: Debian's chromium driven by Playwright against a live server.

Run with `pytest -m browser`; they are part of the normal suite too. Never `playwright install`:
the browser is the system's /usr/bin/chromium.
"""

import importlib
import math
import os
import shutil
from datetime import UTC, datetime, timedelta

import pytest
from django.apps import apps
from django.conf import settings

from messages.models import Message, MessageEvent, MessageState
from terminals.models import Terminal
from terminals.services import api_key_hash
from tests.factories import DeadLetterFactory, MessageFactory, MetricSampleFactory, TerminalFactory, UserFactory

# Playwright's sync API runs an event loop in this thread; the ORM calls made here for set-up
# and checks are still plain synchronous calls.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = "/usr/bin/chromium"
PASSWORD = "correct horse battery staple"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.skipif(not shutil.which(CHROMIUM), reason="Debian's chromium is not installed"),
]
S = MessageState


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield b
        b.close()


@pytest.fixture
def world(settings):
    """A small but lifelike hub: terminals, messages in every state, dead letters, an hour of samples."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # A transactional test elsewhere may have flushed the groups the data migration made.
    importlib.import_module("syncadmin.migrations.0003_console_groups").create_groups(apps, None)
    now = datetime.now(UTC)
    terminals = [
        TerminalFactory(
            code=f"STORE{i:02d}-T1",
            name=f"Front till {i}",
            store=f"Store {i:02d}",
            app_version="4.2.1" if i % 3 else "4.1.9",
            last_heartbeat_at=now - timedelta(seconds=20 + i * 7) if i != 4 else now - timedelta(hours=3),
            clock_skew_seconds=(i - 3) * 1.5,
            reported_backlog=i * 3,
        )
        for i in range(1, 7)
    ]
    states = [S.PROCESSED] * 12 + [S.RECEIVED] * 3 + [S.FAILED] * 2 + [S.DISCARDED]
    for n, state in enumerate(states * 2):
        MessageFactory(
            terminal=terminals[n % 6],
            state=state,
            message_type=["product.upsert", "sale.upsert", "customer.upsert"][n % 3],
            entity_type=["product", "sale", "customer"][n % 3],
            sequence=n + 1,
            attempts=1 if state != S.RECEIVED else 0,
            received_at=now - timedelta(minutes=n * 3),
            last_error="ConnectionResetError: central store went away" if state == S.FAILED else "",
        )
    dead = [
        DeadLetterFactory(
            message__terminal=terminals[i % 3],
            message__received_at=now - timedelta(minutes=i),
            message__payload='{"name": "Espresso beans 1kg", "price": "-12.50", "vat": 0.2}',
        )
        for i in range(4)
    ]
    for d in dead:  # the lifecycle the workers would have written
        m, t0 = d.message, d.message.received_at
        MessageEvent.objects.create(message=m, to_state=S.RECEIVED, at=t0, actor=f"terminal:{m.terminal.code}")
        for attempt in range(1, 4):
            at = t0 + timedelta(seconds=10 * attempt)
            MessageEvent.objects.create(
                message=m, from_state=S.RECEIVED if attempt == 1 else S.FAILED, to_state=S.PROCESSING, at=at,
                actor="worker-1", attempt=attempt,
            )  # fmt: skip
            last = attempt == 3
            MessageEvent.objects.create(
                message=m, from_state=S.PROCESSING, to_state=S.DEAD_LETTERED if last else S.FAILED,
                at=at + timedelta(seconds=1), actor="worker-1", attempt=attempt, error_class="ValueError",
                reason="price 12 is negative" + ("" if last else f" (retry in {5 * attempt}s)"),
                traceback='Traceback (most recent call last):\n  File "messages/handlers.py", line 120, in apply\n'
                "ValueError: price 12 is negative",
            )  # fmt: skip
    DeadLetterFactory(
        message__terminal=terminals[5],
        message__message_type="promo.apply",
        message__entity_type="promo",
        reason="no handler for message type 'promo.apply'",
        error_class="PermanentError",
        group_key="PermanentError: no handler for message type 'promo.apply'",
    )
    for i in range(120):  # two hours of minute samples with a bump in the backlog
        MetricSampleFactory(
            at=now - timedelta(minutes=120 - i),
            backlog=int(40 + 35 * math.sin(i / 14) ** 2 + (i % 7)),
            processed_last_minute=int(220 + 60 * math.cos(i / 9) + (i * 13) % 25),
            failed_last_minute=i % 4,
        )
    UserFactory(username="alice", group="Terminal admins", password=PASSWORD)
    UserFactory(username="sam", group="Support", password=PASSWORD)
    return {"terminals": terminals, "dead": dead}


def shots_dir():
    path = settings.VAR_DIR / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


def login(browser, live_server, username="alice"):
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.goto(f"{live_server.url}/")
    assert "/accounts/login/" in page.url  # anonymous is sent to the login page
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    return page


def finish(page) -> None:
    """Leave the page with no request in flight before the test's database is flushed.

    An htmx refresh still running in the live server when the test ended once held SQLite's
    session table while the teardown flushed it ("database table is locked"). Waiting for the
    network to go idle, then leaving for a blank page, stops the polling first.
    """
    page.wait_for_load_state("networkidle")
    page.goto("about:blank")
    page.close()


def test_dashboard_and_filter_the_message_table(browser, live_server, world):
    page = login(browser, live_server)
    assert page.locator(".card").first.is_visible()
    assert page.locator("svg.chart").count() == 2
    page.screenshot(path=str(shots_dir() / "dashboard.png"), full_page=True)

    page.click("nav >> text=Messages")
    page.wait_for_selector("#message-table")
    page.evaluate("window.__noReload = 1")
    page.select_option("select[name=state]", "Failed")
    page.wait_for_function("new URL(location.href).searchParams.get('state') === 'Failed'")
    page.wait_for_function(
        "[...document.querySelectorAll('#message-table tbody .badge')].every(b => b.textContent === 'Failed')"
    )
    assert page.locator("#message-table tbody tr").count() == 4
    assert page.evaluate("window.__noReload") == 1  # swapped by htmx, not reloaded
    page.select_option("select[name=state]", "")
    page.wait_for_function("!new URL(location.href).searchParams.get('state')")
    page.wait_for_function("document.querySelectorAll('#message-table tbody tr').length > 30")
    page.screenshot(path=str(shots_dir() / "messages.png"), full_page=False)
    page.click("nav >> text=Dead letters")
    page.wait_for_selector("#group-table")
    assert page.locator("#group-table tbody tr").count() == 2
    page.screenshot(path=str(shots_dir() / "dead-letters.png"), full_page=True)
    finish(page)


def test_open_dead_letter_and_retry_in_place(browser, live_server, world):
    page = login(browser, live_server, "sam")
    page.goto(f"{live_server.url}/messages/?state=DeadLettered")
    target = world["dead"][0].message
    page.click(f"#message-table a:text-is('{target.message_id}')")
    page.wait_for_selector("#retry-outlook")
    assert page.inner_text("#message-state") == "DeadLettered"
    page.screenshot(path=str(shots_dir() / "message-detail.png"), full_page=True)
    page.evaluate("window.__noReload = 1")
    page.fill("#actions input[name=reason] >> nth=0", "price fixed in HQ")
    page.click("#retry-button")
    page.wait_for_function("document.querySelector('#message-state').textContent === 'Received'")
    assert page.evaluate("window.__noReload") == 1
    assert "queued again" in page.inner_text("#flash")
    assert Message.objects.get(pk=target.pk).state == S.RECEIVED
    finish(page)


def test_bulk_discard_a_selection_with_reason(browser, live_server, world):
    page = login(browser, live_server, "sam")
    page.goto(f"{live_server.url}/messages/?state=DeadLettered&terminal={world['terminals'][0].code}")
    boxes = page.locator("#message-table tbody input[name=select]")
    assert boxes.count() == 2
    boxes.nth(0).check()
    boxes.nth(1).check()
    assert page.inner_text("#selection-count") == "2 selected"
    page.click("button[value=discard]")
    page.wait_for_selector("#bulk-count")
    assert "discard 2 messages" in page.inner_text("#bulk-count")
    page.fill("#bulk-confirm input[name=reason]", "duplicate test data")
    page.click("#bulk-confirm button[type=submit]")
    page.wait_for_selector("#bulk-result")
    assert "Discarded 2 messages" in page.inner_text("#bulk-result")
    # The table refreshed itself: the discarded rows are gone from the filtered list.
    page.wait_for_function("document.querySelectorAll('#message-table tbody input[name=select]').length === 0")
    chosen = [d.message.pk for d in world["dead"] if d.message.terminal_id == world["terminals"][0].pk]
    assert Message.objects.filter(pk__in=chosen, state=S.DISCARDED).count() == 2
    finish(page)


def test_rotate_a_terminal_key(browser, live_server, world):
    page = login(browser, live_server)
    terminal = world["terminals"][1]
    page.goto(f"{live_server.url}/terminals/")
    page.screenshot(path=str(shots_dir() / "terminals.png"), full_page=True)
    page.click(f"a:text-is('{terminal.code}')")
    page.on("dialog", lambda dialog: dialog.accept())
    page.click("#rotate-button")
    page.wait_for_selector("#new-key")
    page.screenshot(path=str(shots_dir() / "terminal-detail.png"), full_page=True)
    key = page.inner_text("#new-key").strip()
    assert Terminal.objects.get(pk=terminal.pk).api_key_hash == api_key_hash(key)
    finish(page)

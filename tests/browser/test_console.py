"""The console in a real browser: Debian's chromium driven by Playwright against a live server.

Run with `pytest -m browser`; they are part of the normal suite too. Never `playwright install`:
the browser is the system's /usr/bin/chromium.
"""

import math
import os
import shutil
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.contrib.sessions.backends.db import SessionStore

from messages.models import Message, MessageEvent, MessageState
from reconciliation import reports
from reconciliation import services as reconciliation_services
from reconciliation.models import RunTrigger
from syncadmin.lib.middleware import IDLE_SESSION_KEY
from terminals.models import Terminal
from terminals.services import api_key_hash
from tests.console_pages import console_objects, console_pages
from tests.factories import (
    BulkJobFactory,
    DeadLetterFactory,
    MessageFactory,
    MetricSampleFactory,
    TerminalFactory,
    UserFactory,
)
from tests.reconciliation.helpers import drain_all, env, ingest

# Predicates given to wait_for_function are written as functions: a bare expression is eval()ed in the
# page, which the Content-Security-Policy (rightly) refuses.

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
    alice = UserFactory(username="alice", group="Terminal admins", password=PASSWORD)
    UserFactory(username="sam", group="Support", password=PASSWORD)
    return {"terminals": terminals, "dead": dead, "alice": alice}


def shots_dir():
    path = settings.VAR_DIR / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


def watch(page) -> list[str]:
    """What the browser reports as wrong on ``page``: console errors (htmx logs its errors there,
    Chrome its Content-Security-Policy refusals), uncaught page errors, and every
    ``securitypolicyviolation`` event (listened for in every document the page loads)."""
    problems: list[str] = []

    def on_console(msg):
        # Django's admin pages name no icon, so Chrome asks for /favicon.ico (404): not a page's fault.
        if msg.type == "error" and not msg.location.get("url", "").endswith("/favicon.ico"):
            problems.append(f"console.{msg.type}: {msg.text} ({msg.location.get('url')})")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: problems.append(f"pageerror: {exc}"))
    page.expose_function("__reportCsp", lambda text: problems.append(f"csp: {text}"))
    page.add_init_script(
        "document.addEventListener('securitypolicyviolation', e => window.__reportCsp("
        "e.effectiveDirective + ' blocked ' + (e.blockedURI || 'inline') + ' on ' + e.documentURI));"
    )
    page.problems = problems
    return problems


def login(browser, live_server, username="alice"):
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    watch(page)
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
    # Every browser test also proves the page broke no rule: no CSP refusal, no htmx error.
    assert page.problems == [], page.problems


def test_dashboard_and_filter_the_message_table(browser, live_server, world):
    page = login(browser, live_server)
    assert page.locator(".card").first.is_visible()
    assert page.locator("svg.chart").count() == 2
    page.screenshot(path=str(shots_dir() / "dashboard.png"), full_page=True)

    page.click("nav >> text=Messages")
    page.wait_for_selector("#message-table")
    page.evaluate("window.__noReload = 1")
    page.select_option("select[name=state]", "Failed")
    page.wait_for_function("() => new URL(location.href).searchParams.get('state') === 'Failed'")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#message-table tbody .badge')].every(b => b.textContent === 'Failed')"
    )
    assert page.locator("#message-table tbody tr").count() == 4
    assert page.evaluate("window.__noReload") == 1  # swapped by htmx, not reloaded
    page.select_option("select[name=state]", "")
    page.wait_for_function("() => !new URL(location.href).searchParams.get('state')")
    page.wait_for_function("() => document.querySelectorAll('#message-table tbody tr').length > 30")
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
    page.wait_for_function("() => document.querySelector('#message-state').textContent === 'Received'")
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
    page.wait_for_function("() => document.querySelectorAll('#message-table tbody input[name=select]').length === 0")
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


# --- issue 15: dead-letter group actions, Back after htmx, CSP on every page, idle sessions -------------


def test_dead_letter_group_confirm_and_cancel_keep_every_group_button_working(browser, live_server, world):
    """Retry group… then Confirm acts; Discard group… then Cancel leaves the panel usable for the next group.

    The group forms once inherited hx-swap="outerHTML" from the table: the confirmation replaced
    #bulk-panel itself, so Confirm had no target (htmx:targetError) and every group button was dead.
    """
    DeadLetterFactory(
        message__terminal=world["terminals"][2],
        message__message_type="stock.upsert",
        reason="KeyError: 'sku'",
        error_class="KeyError",
        group_key="KeyError: 'sku'",
    )
    page = login(browser, live_server, "sam")
    page.set_default_timeout(8_000)
    page.goto(f"{live_server.url}/dead-letters/")
    rows = page.locator("#group-table tbody tr")
    assert rows.count() == 3

    # 1. Retry group… -> confirmation (screenshot) -> Confirm: the four "price" messages are retried.
    rows.filter(has_text="price # is negative").locator("button[value=retry]").click()
    page.wait_for_selector("#bulk-panel #bulk-count")
    assert "retry 4 messages" in page.inner_text("#bulk-count")
    page.screenshot(path=str(shots_dir() / "dead-letters-confirm.png"), full_page=True)
    page.fill("#bulk-confirm input[name=reason]", "price list fixed at HQ")
    page.click("#bulk-confirm button[type=submit]")
    page.wait_for_selector("#bulk-panel #bulk-result")
    assert "Retried 4 messages" in page.inner_text("#bulk-result")
    retried = [d.message.pk for d in world["dead"]]
    assert Message.objects.filter(pk__in=retried, state=S.RECEIVED).count() == 4
    page.wait_for_function("() => document.querySelectorAll('#group-table tbody tr').length === 2")  # table refreshed

    # 2. Discard group… on another group, then Cancel: nothing changes and the panel empties.
    rows.filter(has_text="promo.apply").locator("button[value=discard]").click()
    page.wait_for_selector("#bulk-panel #bulk-count")
    assert "discard 1 message" in page.inner_text("#bulk-count")
    page.click("#bulk-confirm button[data-dismiss=bulk-panel]")
    page.wait_for_function("() => document.getElementById('bulk-panel').innerHTML.trim() === ''")
    assert Message.objects.filter(message_type="promo.apply", state=S.DEAD_LETTERED).count() == 1

    # 3. A third group's button still works, through to the result.
    rows.filter(has_text="KeyError").locator("button[value=retry]").click()
    page.wait_for_selector("#bulk-panel #bulk-count")
    assert "retry 1 message" in page.inner_text("#bulk-count")
    page.click("#bulk-confirm button[type=submit]")
    page.wait_for_selector("#bulk-panel #bulk-result")
    assert Message.objects.get(message_type="stock.upsert").state == S.RECEIVED
    assert page.locator("#bulk-panel").count() == 1
    finish(page)


def full_page_shown(page) -> bool:
    """The whole console page (navigation, a styled body), not a bare table fragment."""
    return page.evaluate(
        """() => !!document.querySelector('header.topbar nav')
              && getComputedStyle(document.body).backgroundColor === 'rgb(244, 246, 248)'"""
    )


def test_back_after_filtering_the_message_list_shows_the_full_page(browser, live_server, world):
    page = login(browser, live_server)
    page.goto(f"{live_server.url}/messages/")
    page.select_option("select[name=state]", "Failed")
    page.wait_for_function("() => new URL(location.href).searchParams.get('state') === 'Failed'")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#message-table tbody .badge')].every(b => b.textContent === 'Failed')"
    )
    page.locator("#message-table tbody a[href^='/messages/']").first.click()
    page.wait_for_selector("#message-state")
    page.go_back()
    page.wait_for_load_state("load")
    assert "state=Failed" in page.url
    page.screenshot(path=str(shots_dir() / "messages-after-back.png"), full_page=False)
    assert full_page_shown(page), page.content()[:300]
    assert page.locator("form#filters").count() == 1
    assert page.locator("#message-table tbody .badge").count() == 4
    finish(page)


def test_back_to_any_list_after_an_htmx_request_shows_the_full_page(browser, live_server, world):
    """Each page that answers htmx with a fragment: fetch it as htmx does, leave, come Back."""
    job = BulkJobFactory()
    run_pk = reconciliation_run_with_a_gap()
    # A superuser: every page below is open to it.
    UserFactory(username="root", is_superuser=True, is_staff=True, password=PASSWORD)
    page = login(browser, live_server, "root")
    fragments = []
    for path in [
        "/?window=6h",  # the dashboard polls its own URL
        "/messages/?state=Failed",
        "/dead-letters/",
        "/terminals/",
        "/audit/",
        "/reconciliation/discrepancies/",
        "/reconciliation/runs/",
        f"/reconciliation/runs/{run_pk}/",
        "/bulk-jobs/",
        f"/bulk-jobs/{job.pk}/",
        "/retention/",
    ]:
        page.goto(f"{live_server.url}{path}")
        assert full_page_shown(page), path
        page.evaluate(
            """() => new Promise(done => {
                 const xhr = new XMLHttpRequest();
                 xhr.open('GET', location.href);
                 xhr.setRequestHeader('HX-Request', 'true');
                 xhr.onload = done;
                 xhr.send();
               })"""
        )
        page.goto(f"{live_server.url}/terminals/new/")
        page.go_back()
        page.wait_for_load_state("load")
        assert page.url == f"{live_server.url}{path}"
        if not full_page_shown(page):
            fragments.append(path)
    assert fragments == [], f"Back showed a bare fragment for {fragments}"
    finish(page)


def reconciliation_run_with_a_gap() -> int:
    terminal = TerminalFactory(code="RECON-T1")
    ingest(terminal, env("recon-a", "A"), env("recon-b", "B"))
    drain_all()
    reports.reported_counts_store(terminal=terminal, counts=[("product", 5, datetime.now(UTC) + timedelta(seconds=1))])
    return reconciliation_services.run_now(trigger=RunTrigger.COMMAND, triggered_by="test").pk


def test_every_console_page_keeps_to_its_content_security_policy(browser, live_server, world):
    """Every page of the URLconf, as a superuser (every button shown): no CSP refusal, no script error."""
    UserFactory(username="root", is_superuser=True, is_staff=True, password=PASSWORD)
    pages = console_pages(console_objects())
    page = login(browser, live_server, "root")
    for p in pages:
        probe = page.request.get(f"{live_server.url}{p.url}", max_redirects=0)
        if probe.status == 405 or not probe.headers.get("content-type", "").startswith("text/html"):
            continue  # an action (POST only), the CSV download, /metrics: no page to render
        response = page.goto(f"{live_server.url}{p.url}")
        policy = dict(d.strip().split(" ", 1) for d in response.headers["content-security-policy"].split(";"))
        assert policy["script-src"] == policy["style-src"] == "'self'", p
        page.wait_for_load_state("networkidle")
    # The admin, still available to superusers, keeps to the same policy.
    alice = world["alice"].pk
    for path in ["/admin/", "/admin/auth/user/", "/admin/auth/user/add/", f"/admin/auth/user/{alice}/change/"]:
        page.goto(f"{live_server.url}{path}")
        page.wait_for_load_state("networkidle")
    finish(page)


def test_an_idle_session_sends_the_open_dashboard_to_the_login_page(browser, live_server, world, settings):
    """The dashboard's own polls never count as activity: once the session has been idle past
    CONSOLE_SESSION_IDLE_MINUTES the next poll takes the whole window to the login page."""
    settings.CONSOLE_REFRESH_SECONDS = 1
    page = login(browser, live_server)
    page.wait_for_selector("#dashboard")
    cookie = next(c for c in page.context.cookies() if c["name"] == settings.SESSION_COOKIE_NAME)
    # Polls come and go every second: they do not move the last activity.
    page.wait_for_timeout(2_500)
    session = SessionStore(session_key=cookie["value"])
    last = session[IDLE_SESSION_KEY]
    assert time.time() - last >= 2
    session[IDLE_SESSION_KEY] = last - (settings.CONSOLE_SESSION_IDLE_MINUTES * 60 + 5)
    session.save()
    page.wait_for_url(lambda url: "/accounts/login/" in url, timeout=10_000)
    assert "next=/" in page.url
    assert page.locator("#id_username").count() == 1 and page.locator("#dashboard").count() == 0
    assert "inactivity" in page.inner_text("main")
    finish(page)


def test_make_an_api_token_and_use_it_in_the_api_docs(browser, live_server, world):
    """User menu → API tokens: the token is shown once; the API's Swagger UI (its files served by the
    hub) renders under the console's policy, and a call authorised with the token answers."""
    page = login(browser, live_server)
    page.click("text=API tokens")
    page.fill("#id_name", "browser")
    page.click("text=Create token")
    secret = page.inner_text("#new-token").strip()
    assert secret.startswith("sat_")
    page.reload()
    assert secret not in page.content()  # shown once
    page.goto(f"{live_server.url}/api/v1/docs")
    page.wait_for_selector("#swagger-ui .opblock-tag", timeout=15000)
    assert "SyncAdmin automation API" in page.inner_text("#swagger-ui")
    answer = page.request.get(f"{live_server.url}/api/v1/health", headers={"Authorization": f"Bearer {secret}"})
    assert answer.status == 200 and "backlog" in answer.json()
    finish(page)

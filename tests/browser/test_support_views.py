"""An entity's whole story and saved views, in a real browser (Debian's chromium, Playwright).

The browser, the login and the end-of-test checks (no CSP refusal, no htmx error) are those of
tests/browser/test_console.py. The screenshots land in var/screenshots/ (entity-story.png,
saved-views.png); the ones in docs/img/ are copied from there.
"""

import json
import os
import shutil
from datetime import UTC, datetime

import pytest

from messages import services
from messages.models import MessageState, SavedView
from tests.browser.test_console import PASSWORD, browser, finish, login, shots_dir  # noqa: F401 - browser: a fixture
from tests.factories import MessageFactory, TerminalFactory, UserFactory
from tests.reconciliation.helpers import drain_all

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
CHROMIUM = "/usr/bin/chromium"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.skipif(not shutil.which(CHROMIUM), reason="Debian's chromium is not installed"),
]
S = MessageState
KEY = "BEANS-1KG"


def envelope(mid, seq, payload):
    return services.Envelope(
        message_id=mid, message_type="product.upsert", entity_key=KEY, sequence=seq,
        created_at=datetime.now(UTC), payload=json.dumps(payload),
    )  # fmt: skip


@pytest.fixture
def story_world(settings):
    """One product's life at two tills: applied, overwritten, a late older change, a bad payload, one waiting."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    t1 = TerminalFactory(code="STORE03-T1", name="Front till", store="Store 03")
    t2 = TerminalFactory(code="STORE07-T2", name="Back office", store="Store 07")
    services.message_ingest_batch(
        terminal=t1, envelopes=[envelope("t1-0041", 41, {"name": "Espresso beans 1kg", "price": "12.50"})]
    )
    services.message_ingest_batch(
        terminal=t2, envelopes=[envelope("t2-0007", 7, {"name": "Espresso beans 1kg", "price": "12.90"})]
    )
    drain_all()
    services.message_ingest_batch(
        terminal=t1, envelopes=[envelope("t1-0043", 43, {"name": "Espresso beans 1kg", "price": "13.10"})]
    )
    drain_all()
    services.message_ingest_batch(
        terminal=t1, envelopes=[envelope("t1-0042", 42, {"name": "Espresso beans 1kg", "price": "12.80"})]
    )
    services.message_ingest_batch(terminal=t2, envelopes=[envelope("t2-0008", 8, ["not", "an", "object"])])
    drain_all()
    services.message_ingest_batch(
        terminal=t2, envelopes=[envelope("t2-0009", 9, {"name": "Espresso beans 1kg", "price": "13.00"})]
    )
    for n in range(6):
        MessageFactory(terminal=t1 if n % 2 else t2, state=S.FAILED if n % 3 == 0 else S.PROCESSED,
                       last_error="ConnectionResetError: central store went away" if n % 3 == 0 else "")  # fmt: skip
    UserFactory(username="alice", group="Terminal admins", password=PASSWORD)
    UserFactory(username="sam", group="Support", password=PASSWORD)
    return {"t1": t1, "t2": t2}


def test_an_entitys_whole_story_from_a_message_from_search_and_from_a_reconciliation_cell(
    browser,  # noqa: F811 - the fixture of tests/browser/test_console.py
    live_server,
    story_world,
):
    page = login(browser, live_server, "sam")
    # 1. From a message's detail.
    page.goto(f"{live_server.url}/messages/?entity_key={KEY}")
    page.click("#message-table a:text-is('t1-0042')")
    page.click("#entity-story-link")
    page.wait_for_selector("#story-table")
    assert page.inner_text("#entity-key") == KEY
    central = page.locator("#central-rows tbody tr")
    assert central.count() == 2
    assert "STORE03-T1" in central.nth(0).inner_text() and "43" in central.nth(0).inner_text()
    rows = page.locator("#story-table tbody tr")
    assert rows.count() == 6
    # Sequence order across the terminals, each with what it did.
    kinds = [rows.nth(i).get_attribute("class") for i in range(6)]
    assert kinds == [
        "story-applied",
        "story-dead_lettered",
        "story-waiting",
        "story-applied",
        "story-noop",
        "story-applied",
    ]  # fmt: skip  (7, 8, 9 from STORE07; 41, 42, 43 from STORE03)
    assert "no-op: older" in rows.nth(4).inner_text()
    page.screenshot(path=str(shots_dir() / "entity-story.png"), full_page=True)
    # 2. From search: the message list's "Entity story…" form.
    page.goto(f"{live_server.url}/messages/")
    page.click("text=Entity story…")
    page.fill("#entity-form input[name=entity_type]", "product")
    page.fill("#entity-form input[name=entity_key]", KEY)
    page.click("#entity-form button[type=submit]")
    page.wait_for_selector("#story-table")
    assert page.locator("#story-table tbody tr").count() == 6
    # A wrong entity type is the form's error (the page, answered 200 like a list's bad filter), not an error page.
    page.fill("#entity-form input[name=entity_type]", "Product.Upsert")
    page.click("#entity-form button[type=submit]")
    page.wait_for_selector("#entity-errors")
    page.screenshot(path=str(shots_dir() / "entity-story-form-error.png"), full_page=False)
    # 3. From a reconciliation cell: its latest messages link to their entity's story.
    page.goto(f"{live_server.url}/reconciliation/cell/?terminal=STORE03-T1&entity_type=product")
    page.click(f"a[title=\"the entity's whole story\"]:text-is('{KEY}') >> nth=0")
    page.wait_for_selector("#story-table")
    assert page.inner_text("#entity-key") == KEY
    finish(page)


def test_save_the_message_filter_for_the_team_and_find_it_in_the_navigation(
    browser,  # noqa: F811 - the fixture of tests/browser/test_console.py
    live_server,
    story_world,
):
    page = login(browser, live_server, "alice")
    page.click("nav >> text=Messages")
    page.wait_for_selector("#message-table")
    page.select_option("select[name=state]", "Failed")
    page.wait_for_function("() => new URL(location.href).searchParams.get('state') === 'Failed'")
    page.fill("#save-view-form input[name=name]", "Central store timeouts")
    page.check("#save-view-form input[name=shared]")
    page.click("#save-view-button")
    page.wait_for_selector("#save-view-result-text")
    assert "for the team" in page.inner_text("#save-view-result-text")
    view = SavedView.objects.get()
    assert (view.name, view.query, view.shared) == ("Central store timeouts", "state=Failed", True)
    # The menu was refreshed in place: the new view is in it without reloading the page.
    page.click("#views-menu summary")
    page.wait_for_selector("#views-menu a:text-is('Central store timeouts')")
    page.screenshot(path=str(shots_dir() / "saved-views.png"), full_page=False)
    finish(page)

    # Another support person finds the team's view in their navigation and opens it.
    page = login(browser, live_server, "sam")
    page.click("#views-menu summary")
    page.click("#views-menu a:text-is('Central store timeouts')")
    page.wait_for_function("() => new URL(location.href).searchParams.get('state') === 'Failed'")
    page.wait_for_selector("#message-table")
    badges = page.locator("#message-table tbody .badge")
    assert badges.count() == 2 and set(badges.all_inner_texts()) == {"Failed"}
    assert page.locator("#save-view-form input[name=shared]").count() == 0  # Support: personal views only
    page.fill("#save-view-form input[name=name]", "my failed")
    page.click("#save-view-button")
    page.wait_for_selector("#save-view-result-text")
    page.goto(f"{live_server.url}/views/")
    table = page.locator("#saved-view-table")
    assert "my failed" in table.inner_text() and "Central store timeouts" in table.inner_text()
    assert table.locator("button:text-is('Delete')").count() == 1  # their own only
    page.screenshot(path=str(shots_dir() / "saved-views-list.png"), full_page=False)
    table.locator("button:text-is('Delete')").click()
    page.wait_for_selector("#saved-view-table")
    assert list(SavedView.objects.values_list("name", flat=True)) == ["Central store timeouts"]
    finish(page)

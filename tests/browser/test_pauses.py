"""Pausing a message type in a real browser: from a message's page to the pause form, the dashboard's
pause panel, and resume (issue 20, item 1). Screenshots go to docs/img/ for docs/support.md."""

from pathlib import Path

import pytest
from django.conf import settings

from messages.models import MessageState, QueuePause
from syncadmin.models import AuditEntry
from tests.browser.test_console import CHROMIUM, browser, finish, login, world  # noqa: F401 - fixtures
from tests.factories import MessageFactory

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed"),
]


def docs_img(name: str) -> str:
    return str(Path(settings.BASE_DIR) / "docs" / "img" / name)


def test_support_pauses_a_type_from_a_message_sees_it_on_the_dashboard_and_resumes_it(browser, live_server, world):  # noqa: F811
    waiting = [
        MessageFactory(terminal=world["terminals"][0], message_type="price.upsert", entity_type="price")
        for _ in range(3)
    ]
    page = login(browser, live_server, "sam")
    page.goto(f"{live_server.url}/messages/{waiting[0].pk}/")
    page.click("#pause-type-link")
    page.wait_for_selector("#pause-form")
    assert page.input_value("#id_value") == "price.upsert" and page.input_value("#id_scope") == "message_type"
    page.fill("#id_reason", "handler rejects every price since the 14:02 deploy, ticket OPS-311")
    page.screenshot(path=docs_img("pauses-form.png"), full_page=True)
    page.click("#pause-button")
    page.wait_for_selector("#flash")
    assert "Paused message type price.upsert" in page.inner_text("#flash")

    page.goto(f"{live_server.url}/")
    page.wait_for_selector("#pauses .pause-row")
    row = page.inner_text("#pauses .pause-row")
    assert "price.upsert" in row and "user:sam" in row and "OPS-311" in row and "3" in row
    page.locator("#pauses").screenshot(path=docs_img("pauses-dashboard.png"))

    pause = QueuePause.objects.get()
    page.fill("#pauses form input[name=reason]", "fix deployed 15:10")
    # The dashboard refreshes itself (hx-get every CONSOLE_REFRESH_SECONDS): a refresh now keeps the typed reason.
    page.evaluate(
        "() => htmx.ajax('GET', document.querySelector('#dashboard').getAttribute('hx-get'),"
        " {target: '#dashboard', swap: 'outerHTML'})"
    )
    assert page.input_value(f"#resume-reason-{pause.pk}") == "fix deployed 15:10"
    page.click(f"#resume-{pause.pk}")
    page.wait_for_url(f"{live_server.url}/")
    assert page.locator("#pauses").count() == 0
    assert not QueuePause.objects.exists()
    assert list(AuditEntry.objects.order_by("pk").values_list("action", flat=True))[-2:] == [
        "queue.pause",
        "queue.resume",
    ]
    assert all(m.state == MessageState.RECEIVED for m in waiting)
    finish(page)

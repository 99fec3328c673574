"""The entity story page: reached from a message, the message list and a reconciliation cell; bad input never a 500."""

from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from messages import services
from messages.models import Message
from tests.factories import MessageFactory, TerminalFactory
from tests.messages.helpers import drain_all, env

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "table-container"}


def story_url(entity_type="product", key="SKU-1", **extra):
    return "/entities/?" + urlencode({"entity_type": entity_type, "entity_key": key, **extra})


@pytest.fixture
def entity():
    t1, t2 = TerminalFactory(code="ST-1"), TerminalFactory(code="ST-2")
    services.message_ingest_batch(terminal=t1, envelopes=[env("a3", seq=3, payload={"name": "Beans", "price": 9})])
    services.message_ingest_batch(terminal=t2, envelopes=[env("b1", seq=1)])
    drain_all()
    services.message_ingest_batch(terminal=t1, envelopes=[env("a2", seq=2)])
    drain_all()
    return t1, t2


@pytest.mark.parametrize("role", ["Viewers", "Support", "Terminal admins"])
def test_every_console_role_sees_the_story(login_as, entity, role):
    response = login_as(role).get(story_url())
    assert response.status_code == 200
    assert response["Cache-Control"].startswith("max-age=0") or "no-cache" in response["Cache-Control"]
    html = response.content.decode()
    assert "ST-1" in html and "ST-2" in html and "&quot;Beans&quot;" in html  # central data, pretty-printed
    assert html.index(">a2<") < html.index(">a3<")  # sequence order across terminals: b1(1), a2(2), a3(3)
    assert html.index(">b1<") < html.index(">a2<")
    assert "no-op: older" in html and "applied" in html


def test_anonymous_and_groupless_are_kept_out(client, login_as):
    assert client.get(story_url()).status_code == 302
    assert login_as(None).get(story_url()).status_code == 403


def test_without_an_entity_it_is_the_find_form(login_as):
    response = login_as("Viewers").get("/entities/")
    assert response.status_code == 200 and b'id="entity-form"' in response.content
    assert b"story-table" not in response.content


@pytest.mark.parametrize(
    "entity_type,key",
    [("Product", "SKU-1"), ("product.upsert", "SKU-1"), ("", "SKU-1"), ("product", ""), ("product", "k" * 129),
     ("product", "a\x00b"), ("p" * 41, "x")],
)  # fmt: skip
def test_bad_input_is_a_form_error_not_a_500(login_as, entity_type, key):
    response = login_as("Viewers").get(story_url(entity_type, key))
    assert response.status_code == 200  # as a list's invalid filter: the page, saying why
    assert b'id="entity-errors"' in response.content and b"story-table" not in response.content


@pytest.mark.parametrize("key", ["A/B/C", "50% off?", "k&x=1#frag", " padded ", "ключ"])
def test_any_key_a_terminal_may_send_is_found_exactly(login_as, key):
    terminal = TerminalFactory(code="ST-1")
    services.message_ingest_batch(terminal=terminal, envelopes=[env("odd", key=key)])
    drain_all()
    response = login_as("Viewers").get(story_url(key=key))
    assert response.status_code == 200
    assert b">odd<" in response.content and b"1 row," in response.content


def test_a_hot_entity_is_paged_by_cursor(login_as, settings):
    settings.CONSOLE_PAGE_SIZE = 3
    terminal = TerminalFactory(code="ST-1")
    for seq in range(1, 8):
        MessageFactory(terminal=terminal, entity_key="HOT", sequence=seq, message_id=f"h{seq}")
    client = login_as("Viewers")
    first = client.get(story_url(key="HOT")).content.decode()
    assert ">h1<" in first and ">h3<" in first and ">h4<" not in first
    page = first.split('rel="next"')[0].rsplit('href="', 1)[1].split('"')[0].replace("&amp;", "&")
    second = client.get(page, **HX)
    assert second.status_code == 200
    body = second.content.decode()
    assert body.lstrip().startswith('<div id="table-container"')  # the table alone, for htmx
    assert ">h4<" in body and ">h6<" in body and ">h3<" not in body


def test_a_broken_cursor_shows_the_first_page_with_a_notice(login_as, entity):
    response = login_as("Viewers").get(story_url(after="not-a-cursor"))
    assert response.status_code == 200 and b"not valid any more" in response.content


def test_reached_from_a_message_the_message_list_and_a_reconciliation_cell(login_as, entity):
    client = login_as("Viewers")
    link = story_url().replace("&", "&amp;")
    message = Message.objects.get(message_id="a3")
    assert link in client.get(f"/messages/{message.pk}/").content.decode()
    assert link in client.get("/messages/").content.decode()  # each row's key
    listed = client.get("/messages/?entity_type=product&entity_key=SKU-1").content.decode()
    assert 'id="story-link"' in listed
    cell = login_as("Support").get("/reconciliation/cell/?terminal=ST-1&entity_type=product").content.decode()
    assert link in cell


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entity_type=st.text(max_size=45), key=st.text(max_size=140))
def test_any_input_answers_the_page(login_as, entity_type, key):
    response = login_as("Viewers").get("/entities/", {"entity_type": entity_type, "entity_key": key})
    assert response.status_code == 200

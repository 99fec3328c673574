"""messages/views/pauses.py and the dashboard's pause panel: pause from the console, see it, resume it."""

from datetime import UTC, datetime

import pytest

from messages.models import PARK_OFFSET, MessageState, QueuePause
from syncadmin.models import AuditEntry
from tests.factories import MessageFactory, QueuePauseFactory

pytestmark = pytest.mark.django_db


def test_support_pauses_a_type_and_the_dashboard_shows_what_by_whom_and_why(login_as):
    client = login_as("Support")
    response = client.post("/pauses/", {"scope": "message_type", "value": "price.upsert", "reason": "bug 42"})
    assert response.status_code == 200 and b"Paused message type price.upsert" in response.content
    pause = QueuePause.objects.get()
    assert (pause.value, pause.paused_by, pause.reason) == ("price.upsert", "user:support", "bug 42")
    MessageFactory(message_type="price.upsert")
    page = client.get("/").content.decode()
    assert 'id="pauses"' in page and "price.upsert" in page and "user:support" in page and "bug 42" in page
    assert f'id="resume-{pause.pk}"' in page


def test_bad_input_is_a_form_error_not_a_500(login_as):
    client = login_as("Support")
    response = client.post("/pauses/", {"scope": "message_type", "value": "not a type", "reason": "r"})
    assert response.status_code == 400 and b"is not a message type" in response.content
    response = client.post("/pauses/", {"scope": "message_type", "value": "price.upsert", "reason": ""})
    assert response.status_code == 400 and b"required" in response.content
    response = client.post("/pauses/", {"scope": "galaxy", "value": "x", "reason": "r"})
    assert response.status_code == 400
    assert not QueuePause.objects.exists()


def test_pausing_twice_is_a_form_error(login_as):
    QueuePauseFactory()
    response = login_as("Support").post("/pauses/", {"scope": "message_type", "value": "price.upsert", "reason": "r"})
    assert response.status_code == 400 and b"paused already" in response.content


def test_resume_goes_back_to_the_dashboard_and_is_audited(login_as):
    pause = QueuePauseFactory()
    response = login_as("Support").post(f"/pauses/{pause.pk}/resume/", {"reason": "fixed", "next": "/"})
    assert response.status_code == 302 and response["Location"] == "/"
    assert not QueuePause.objects.exists()
    assert AuditEntry.objects.get(action="queue.resume").reason == "fixed"


def test_resume_never_redirects_off_site(login_as):
    pause = QueuePauseFactory()
    response = login_as("Support").post(f"/pauses/{pause.pk}/resume/", {"next": "https://evil.example/"})
    assert response.status_code == 200 and b"Resumed" in response.content


def test_a_viewer_sees_pauses_but_no_form_and_no_resume_button(login_as):
    pause = QueuePauseFactory()
    client = login_as("Viewers")
    page = client.get("/pauses/").content.decode()
    assert "price.upsert" in page and 'id="pause-form"' not in page and f'id="resume-{pause.pk}"' not in page
    assert f'id="resume-{pause.pk}"' not in client.get("/").content.decode()
    assert client.post("/pauses/", {"scope": "entity_type", "value": "stock", "reason": "r"}).status_code == 403
    assert client.post(f"/pauses/{pause.pk}/resume/").status_code == 403
    assert QueuePause.objects.count() == 1


def test_message_detail_offers_to_pause_its_type_prefilled(login_as):
    message = MessageFactory(message_type="price.upsert")
    client = login_as("Support")
    page = client.get(f"/messages/{message.pk}/").content.decode()
    assert 'id="pause-type-link"' in page and "value=price.upsert" in page
    form = client.get("/pauses/?scope=message_type&value=price.upsert").content.decode()
    assert 'value="price.upsert"' in form
    assert 'id="pause-type-link"' not in login_as("Viewers").get(f"/messages/{message.pk}/").content.decode()


def test_a_parked_message_shows_its_own_due_time_and_that_a_pause_holds_it(login_as):
    """Parking moves the stored due time ~1,000 years on; the page shows the message's own, exact."""
    due = datetime(2026, 12, 4, 9, 30, 15, tzinfo=UTC)
    message = MessageFactory(state=MessageState.FAILED, next_attempt_at=due + PARK_OFFSET)
    page = login_as("Viewers").get(f"/messages/{message.pk}/").content.decode()
    assert 'id="parked"' in page and "due at 2026-12-04 09:30:15" in page
    message.next_attempt_at = due  # not parked: the usual line, no badge
    message.save()
    page = login_as("Viewers").get(f"/messages/{message.pk}/").content.decode()
    assert 'id="parked"' not in page and "next at 09:30:15" in page

"""Idempotency-Key: a retry gets the first answer and changes nothing twice; the same key with another
request is refused (422); a failed call stores nothing; keys are per user; an expired key is forgotten."""

import json
import threading

import pytest
from django.db import connection
from django.utils import timezone

from messages.models import MessageState
from syncadmin.models import AuditEntry, IdempotencyRecord
from syncadmin.services import idempotency_purge
from terminals.models import Terminal
from tests.factories import DeadLetterFactory, MessageFactory
from tests.syncadmin.api.conftest import assert_problem

pytestmark = pytest.mark.django_db
KEY = {"Idempotency-Key": "rollout-2026-12-04"}


def test_a_retried_create_returns_the_first_answer_and_creates_once(admin_api):
    first = admin_api.post("/terminals", {"code": "IDEM"}, headers=KEY)
    again = admin_api.post("/terminals", {"code": "IDEM"}, headers=KEY)
    assert first.status_code == again.status_code == 201
    # The same answer, but the terminal's key is never stored in clear, not even for a replay.
    assert again.json() == {**first.json(), "api_key": ""} and first.json()["api_key"]
    assert first.json()["api_key"] not in IdempotencyRecord.objects.get().body
    assert again["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first
    assert Terminal.objects.filter(code="IDEM").count() == 1
    assert AuditEntry.objects.filter(action="terminal.create").count() == 1


def test_a_retried_bulk_retry_changes_nothing_twice(admin_api):
    messages = [MessageFactory(state=MessageState.FAILED) for _ in range(3)]
    body = {"action": "retry", "ids": [m.pk for m in messages]}
    assert admin_api.post("/messages/actions", body, headers=KEY).json()["changed"] == 3
    for m in messages:  # the workers fail them again meanwhile: a replay must still not act
        m.state = MessageState.FAILED
        m.save()
    assert admin_api.post("/messages/actions", body, headers=KEY).json()["changed"] == 3
    assert all(m.state == MessageState.FAILED for m in type(messages[0]).objects.all())
    assert AuditEntry.objects.filter(action="message.retry").count() == 1


def test_the_same_key_with_another_request_is_422(admin_api):
    admin_api.post("/terminals", {"code": "K1"}, headers=KEY)
    assert_problem(admin_api.post("/terminals", {"code": "K2"}, headers=KEY), 422)
    assert_problem(admin_api.post("/terminals/K1/disable", {"reason": ""}, headers=KEY), 422)
    assert not Terminal.objects.filter(code="K2").exists()


def test_a_failed_call_stores_nothing_so_its_retry_runs(admin_api):
    message = DeadLetterFactory().message
    assert_problem(admin_api.post(f"/messages/{message.pk}/discard", {"reason": ""}, headers=KEY), 400)
    assert not IdempotencyRecord.objects.exists()
    assert admin_api.post(f"/messages/{message.pk}/discard", {"reason": "dup"}, headers=KEY).status_code == 200


def test_keys_are_per_user_and_forgotten_when_expired(api_as):
    admin, other = api_as("Terminal admins"), api_as("superuser")
    assert admin.post("/terminals", {"code": "U1"}, headers=KEY).status_code == 201
    assert other.post("/terminals", {"code": "U2"}, headers=KEY).status_code == 201  # its own key space
    IdempotencyRecord.objects.update(expires_at=timezone.now())
    assert idempotency_purge() == 2
    assert_problem(admin.post("/terminals", {"code": "U1"}, headers=KEY), 409)  # runs again: the code exists now


def test_a_bad_key_is_400(admin_api):
    assert_problem(admin_api.post("/terminals", {"code": "B1"}, headers={"Idempotency-Key": "x" * 256}), 400)
    assert_problem(admin_api.post("/terminals", {"code": "B1"}, headers={"Idempotency-Key": ""}), 400)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_calls_with_one_key_create_once(admin_api, client):
    """Two real transactions: the second waits on the key's row, then answers what the first did."""
    answers = []

    def send():
        try:
            answers.append(admin_api.post("/terminals", {"code": "RACE"}, headers=KEY))
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [a.status_code for a in answers] == [201, 201]
    first, second = (json.loads(a.content) for a in answers)
    assert {**first, "api_key": ""} == {**second, "api_key": ""}
    assert sorted(bool(a["api_key"]) for a in (first, second)) == [False, True]  # the key, once
    assert Terminal.objects.filter(code="RACE").count() == 1

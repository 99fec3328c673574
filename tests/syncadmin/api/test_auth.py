"""Who may call: bearer tokens (live, revoked, expired, inactive user), last-used written at most once a
minute, the console session with and without its CSRF token, and the per-token rate limit (429)."""

import json
import time
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from syncadmin.models import ApiToken
from syncadmin.services import api_token_create, api_token_revoke
from tests.factories import TerminalFactory, UserFactory
from tests.syncadmin.api.conftest import assert_problem

pytestmark = pytest.mark.django_db


def call(client, secret=None, **extra):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {secret}"} if secret else {}
    return client.get("/api/v1/terminals", **headers, **extra)


def test_no_wrong_revoked_or_expired_token_is_401(client):
    user = UserFactory(username="tok", group="Viewers")
    token, secret = api_token_create(user=user, name="t")
    assert call(client, secret).status_code == 200
    for bad in (None, "sat_wrong", secret + "x", secret.upper()):
        response = call(client, bad)
        assert_problem(response, 401)
        assert response["WWW-Authenticate"] == "Bearer"
    assert_problem(client.get("/api/v1/terminals", HTTP_AUTHORIZATION=f"Basic {secret}"), 401)
    wrong_post = client.post("/api/v1/terminals", "{}", content_type="application/json", HTTP_AUTHORIZATION="Bearer x")
    assert_problem(wrong_post, 401)  # not a CSRF 403: no session was offered
    api_token_revoke(token=token, actor="test")
    assert_problem(call(client, secret), 401)
    expired, expired_secret = api_token_create(user=user, name="e", expires_at=timezone.now() - timedelta(seconds=1))
    assert_problem(call(client, expired_secret), 401)
    _, live = api_token_create(user=user, name="l", expires_at=timezone.now() + timedelta(days=1))
    assert call(client, live).status_code == 200
    user.is_active = False
    user.save()
    assert_problem(call(client, live), 401)


def test_token_is_stored_hashed_and_last_used_is_written_at_most_once_a_minute(client, django_assert_num_queries):
    user = UserFactory(username="used", group="Viewers")
    token, secret = api_token_create(user=user, name="t")
    assert secret.startswith("sat_") and token.token_hash != secret and secret not in token.token_hash
    assert token.last_used_at is None
    call(client, secret)
    first = ApiToken.objects.get(pk=token.pk).last_used_at
    assert first is not None
    call(client, secret)
    assert ApiToken.objects.get(pk=token.pk).last_used_at == first  # within the minute: not written again
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=first - timedelta(seconds=61))
    call(client, secret)
    assert ApiToken.objects.get(pk=token.pk).last_used_at > first


def test_a_token_has_its_users_permissions_only(api_as):
    TerminalFactory(code="PERM")
    viewer = api_as("Viewers")
    assert viewer.get("/terminals/PERM").status_code == 200
    assert_problem(viewer.post("/terminals/PERM/disable", {"reason": "x"}), 403)
    assert_problem(api_as(None).get("/terminals"), 403)  # a user in no group reads nothing


def test_the_console_session_works_and_needs_its_csrf_token_to_change_anything(client):
    TerminalFactory(code="SESS")
    user = UserFactory(username="sess", group="Terminal admins")
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    assert browser.get("/api/v1/terminals/SESS").status_code == 200
    body = json.dumps({"reason": "x"})
    refused = browser.post("/api/v1/terminals/SESS/disable", body, content_type="application/json")
    assert_problem(refused, 403)
    browser.get("/")  # the console page sets the CSRF cookie
    token = browser.cookies["csrftoken"].value
    done = browser.post("/api/v1/terminals/SESS/disable", body, content_type="application/json", HTTP_X_CSRFTOKEN=token)
    assert done.status_code == 200 and done.json()["changed"] is True


def test_calls_over_the_rate_answer_429(client, settings):
    settings.SYNC_API_RATE = "3/h"
    # The windows are fixed: calls on both sides of an hour's end count in two windows.
    if (left := 3600 - time.time() % 3600) < 5:
        time.sleep(left + 0.1)
    user = UserFactory(username="fast", group="Viewers")
    _, secret = api_token_create(user=user, name="t")
    _, other = api_token_create(user=user, name="other")
    assert [call(client, secret).status_code for _ in range(3)] == [200, 200, 200]
    response = call(client, secret)
    assert_problem(response, 429)
    assert 0 < int(response["Retry-After"]) <= 3600
    assert call(client, other).status_code == 200  # counted per token

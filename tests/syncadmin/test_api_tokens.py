"""API tokens in the console (user menu → API tokens) and with `manage.py api_token`: shown once, stored
hashed, listed by prefix, revoked by their owner only; both audited."""

import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from syncadmin.models import ApiToken, AuditEntry
from syncadmin.services import api_token_authenticate, api_token_create
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_the_page_makes_a_token_shows_it_once_and_lists_it_by_prefix(login_as):
    client = login_as("Viewers")
    assert client.get("/").content.count(b'href="/account/api-tokens/"') == 1  # in the user menu
    response = client.post("/account/api-tokens/", {"name": "monitoring", "expires_in_days": "30"})
    assert response.status_code == 200 and response["Cache-Control"].startswith("max-age=0")
    token = ApiToken.objects.get()
    secret = response.context["secret"]
    assert secret.encode() in response.content and api_token_authenticate(secret=secret).pk == token.pk
    assert token.token_hash != secret and token.user == client.user
    assert timedelta(days=29) < token.expires_at - timezone.now() <= timedelta(days=30)
    listing = client.get("/account/api-tokens/")
    assert secret.encode() not in listing.content and token.prefix.encode() in listing.content
    assert AuditEntry.objects.get(action="api_token.create").actor == "user:viewers"


def test_a_bad_form_is_400_and_makes_nothing(login_as):
    client = login_as("Viewers")
    assert client.post("/account/api-tokens/", {"name": ""}).status_code == 400
    assert client.post("/account/api-tokens/", {"name": "x", "expires_in_days": "0"}).status_code == 400
    assert not ApiToken.objects.exists()


def test_revoke_only_ones_own_token(login_as):
    client = login_as("Support")
    mine, secret = api_token_create(user=client.user, name="mine")
    theirs, their_secret = api_token_create(user=UserFactory(username="other"), name="theirs")
    assert client.post(f"/account/api-tokens/{theirs.pk}/revoke/").status_code == 404
    assert api_token_authenticate(secret=their_secret) is not None
    assert client.post(f"/account/api-tokens/{mine.pk}/revoke/").status_code == 302
    assert api_token_authenticate(secret=secret) is None
    assert AuditEntry.objects.get(action="api_token.revoke").object_id == str(mine.pk)
    assert client.get(f"/account/api-tokens/{mine.pk}/revoke/").status_code == 405


def test_anonymous_goes_to_the_login_page(client):
    assert client.get("/account/api-tokens/").status_code == 302


def test_the_command_creates_lists_and_revokes():
    UserFactory(username="ops", group="Support")
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "api_token", "create", "--user", "ops", "--name", "runbook", "--expires-days", "7", stdout=out, stderr=err
    )
    secret = out.getvalue().strip()
    token = api_token_authenticate(secret=secret)
    assert token.name == "runbook" and token.user.username == "ops"
    out = io.StringIO()
    call_command("api_token", "list", "--user", "ops", stdout=out)
    assert token.prefix in out.getvalue() and secret not in out.getvalue() and "active" in out.getvalue()
    call_command("api_token", "revoke", str(token.pk), stderr=io.StringIO())
    assert api_token_authenticate(secret=secret) is None
    with pytest.raises(CommandError):
        call_command("api_token", "create", "--user", "nobody", "--name", "x")
    with pytest.raises(CommandError):
        call_command("api_token", "revoke", "99999")

"""Calling the automation API as a role: a user of a console group with a token, through Django's test client."""

from __future__ import annotations

import json

import pytest

from syncadmin.services import api_token_create
from tests.factories import UserFactory

ROLES = ["Viewers", "Support", "Terminal admins"]


class Api:
    """The test client with ``Authorization: Bearer`` set; JSON in, the response out (``.json()`` to read it)."""

    def __init__(self, client, user, secret: str):
        self.client, self.user, self.secret = client, user, secret

    def _headers(self, headers: dict | None) -> dict:
        extra = {"HTTP_AUTHORIZATION": f"Bearer {self.secret}"}
        for name, value in (headers or {}).items():
            extra["HTTP_" + name.upper().replace("-", "_")] = value
        return extra

    def get(self, path: str, params: dict | None = None, headers: dict | None = None):
        return self.client.get("/api/v1" + path, params or {}, **self._headers(headers))

    def post(self, path: str, body=None, headers: dict | None = None):
        data = json.dumps({} if body is None else body)
        return self.client.post("/api/v1" + path, data, content_type="application/json", **self._headers(headers))

    def patch(self, path: str, body, headers: dict | None = None):
        data = json.dumps(body)
        return self.client.patch("/api/v1" + path, data, content_type="application/json", **self._headers(headers))


@pytest.fixture
def api_as(client, db):
    """api_as("Support") -> an Api whose token belongs to a fresh member of that group ("superuser" too)."""

    def _make(group: str | None) -> Api:
        if group == "superuser":
            user = UserFactory(username="api-root", is_superuser=True, is_staff=True)
        else:
            user = UserFactory(username="api-" + (group or "nogroup").lower().replace(" ", "_"), group=group)
        _, secret = api_token_create(user=user, name="tests")
        return Api(client, user, secret)

    return _make


@pytest.fixture
def admin_api(api_as) -> Api:
    return api_as("Terminal admins")


def assert_problem(response, status: int, field: str | None = None) -> dict:
    """``response`` is an RFC 9457 problem of ``status`` (naming ``field`` among its errors when given)."""
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert set(body) == {"type", "title", "status", "detail", "errors"}
    assert body["status"] == status and body["title"] and body["detail"]
    assert body["type"].startswith("/api/v1/problems/")
    if field is not None:
        assert field in [e["field"] for e in body["errors"]], body
    return body

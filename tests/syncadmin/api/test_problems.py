"""Errors are RFC 9457 problems (type, title, status, detail, errors with the field at fault), never a 500
for a caller's input."""

import pytest

from tests.factories import DeadLetterFactory, TerminalFactory
from tests.syncadmin.api.conftest import assert_problem

pytestmark = pytest.mark.django_db


def test_bad_input_names_the_field(admin_api):
    assert_problem(admin_api.post("/terminals", {"code": 5}), 400, "body.code")
    assert_problem(admin_api.get("/terminals", {"limit": "0"}), 400, "query.limit")
    assert_problem(admin_api.get("/terminals", {"enabled": "maybe"}), 400, "query.enabled")
    assert_problem(admin_api.post("/messages/actions", {"action": "explode", "ids": [1]}), 400, "body.action")
    assert_problem(admin_api.get("/messages", {"received_after": "2026-13-40"}), 400, "query.received_after")


def test_malformed_json_and_hostile_values_are_400_not_500(admin_api):
    response = admin_api.client.post(
        "/api/v1/terminals",
        "{not json",
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {admin_api.secret}",
    )
    assert_problem(response, 400)
    message = DeadLetterFactory().message
    assert_problem(admin_api.post(f"/messages/{message.pk}/discard", {"reason": "a\x00b"}), 400, "body.reason")
    assert_problem(admin_api.post("/terminals", {"code": "OK1", "name": "x\x00"}), 400, "body.name")
    assert_problem(admin_api.get("/messages", {"q": "\x00"}), 400)
    assert_problem(admin_api.post("/messages/actions", {"action": "retry", "ids": [2**64]}), 400)
    assert_problem(admin_api.get(f"/bulk-jobs/{2**64}"), 400)


def test_403_404_409_shapes(api_as):
    TerminalFactory(code="SHAPE")
    body = assert_problem(api_as("Viewers").post("/terminals/SHAPE/rotate-key", {}), 403)
    assert "terminals.rotate_key" in body["detail"]
    assert_problem(api_as("Viewers").get("/terminals/NONE"), 404)
    message = DeadLetterFactory().message
    admin = api_as("Terminal admins")
    body = assert_problem(admin.post(f"/messages/{message.pk}/restore", {}), 409)
    assert body["type"] == "/api/v1/problems/illegal-transition"


def test_an_unknown_url_or_a_malformed_id_is_a_problem_too(admin_api):
    assert_problem(admin_api.get("/no-such-endpoint"), 404)
    assert_problem(admin_api.get("/terminals/"), 404)
    assert_problem(admin_api.get("/messages/abc"), 400, "path.message_id")


def test_text_no_database_can_store_is_400_before_any_endpoint_runs(admin_api):
    message = DeadLetterFactory().message
    lone_surrogate = "\ud800"  # JSON can spell it ("\\ud800"); it is not UTF-8
    assert_problem(admin_api.post(f"/messages/{message.pk}/retry", {"reason": lone_surrogate}), 400, "body.reason")
    assert_problem(admin_api.post("/terminals", {"code": "S1", "store": "a\x00"}), 400, "body.store")
    assert_problem(admin_api.get("/terminals/a%00b"), 404)  # no terminal can have that code


def test_a_method_the_path_does_not_have_is_a_405_problem_with_allow(admin_api):
    response = admin_api.client.delete("/api/v1/terminals", HTTP_AUTHORIZATION=f"Bearer {admin_api.secret}")
    body = assert_problem(response, 405)
    assert set(response["Allow"].replace(" ", "").split(",")) == {"GET", "POST"}
    assert "DELETE" in body["detail"]

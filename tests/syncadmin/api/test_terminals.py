"""Terminals through the API: list and filters, get, create (key once), update, enable/disable, rotate, bulk."""

from datetime import UTC, datetime, timedelta

import pytest

from syncadmin.models import AuditEntry
from terminals.models import Terminal
from terminals.services import terminal_authenticate
from tests.factories import TerminalFactory
from tests.syncadmin.api.conftest import assert_problem

pytestmark = pytest.mark.django_db


def codes(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [t["code"] for t in response.json()["items"]]


def test_list_filters_enabled_online_store_and_search(admin_api):
    now = datetime.now(UTC)
    TerminalFactory(code="A-ON", store="North", last_heartbeat_at=now)
    TerminalFactory(code="B-OFF", store="North", last_heartbeat_at=now - timedelta(days=1))
    TerminalFactory(code="C-DIS", store="South", enabled=False, name="Back office")
    assert codes(admin_api.get("/terminals")) == ["A-ON", "B-OFF", "C-DIS"]
    assert codes(admin_api.get("/terminals", {"online": "true"})) == ["A-ON"]
    assert codes(admin_api.get("/terminals", {"online": "false"})) == ["B-OFF", "C-DIS"]
    assert codes(admin_api.get("/terminals", {"enabled": "false"})) == ["C-DIS"]
    assert codes(admin_api.get("/terminals", {"store": "North"})) == ["A-ON", "B-OFF"]
    assert codes(admin_api.get("/terminals", {"q": "back"})) == ["C-DIS"]
    assert admin_api.get("/terminals").json()["items"][0]["online"] is True


def test_list_pages_with_cursors(admin_api):
    for i in range(7):
        TerminalFactory(code=f"P{i}")
    seen, after = [], None
    while True:
        page = admin_api.get("/terminals", {"limit": 3, **({"after": after} if after else {})}).json()
        seen += [t["code"] for t in page["items"]]
        after = page["page"]["next"]
        if not after:
            break
    assert seen == [f"P{i}" for i in range(7)]
    assert_problem(admin_api.get("/terminals", {"after": "nonsense"}), 400, "query.after")


def test_get_and_404(admin_api):
    TerminalFactory(code="T.1_x")
    assert admin_api.get("/terminals/T.1_x").json()["code"] == "T.1_x"
    assert_problem(admin_api.get("/terminals/NOPE"), 404)


def test_create_returns_the_key_once_and_it_authenticates(admin_api):
    response = admin_api.post("/terminals", {"code": "NEW-1", "name": "Till", "store": "S1"})
    assert response.status_code == 201
    key = response.json()["api_key"]
    assert terminal_authenticate(code="NEW-1", key=key).code == "NEW-1"
    assert "api_key" not in admin_api.get("/terminals/NEW-1").json()
    entry = AuditEntry.objects.get(action="terminal.create")  # (the token's own creation is audited too)
    assert (entry.actor, entry.object_id) == (f"user:{admin_api.user.username}", "NEW-1")


def test_create_refuses_bad_and_duplicate_codes(admin_api):
    assert_problem(admin_api.post("/terminals", {"code": "bad code"}), 400, "body.code")
    assert_problem(admin_api.post("/terminals", {}), 400, "body.code")
    TerminalFactory(code="DUP")
    assert_problem(admin_api.post("/terminals", {"code": "DUP"}), 409, "body.code")
    assert Terminal.objects.count() == 1


def test_update_enable_disable_and_rotate_are_audited(admin_api):
    terminal = TerminalFactory(code="EDIT")
    response = admin_api.patch("/terminals/EDIT", {"name": "Renamed"})
    assert response.json()["name"] == "Renamed" and response.json()["store"] == terminal.store
    response = admin_api.post("/terminals/EDIT/disable", {"reason": "stolen"})
    assert response.json() == {**response.json(), "changed": True} and response.json()["terminal"]["enabled"] is False
    assert admin_api.post("/terminals/EDIT/disable", {}).json()["changed"] is False  # a repeat changes nothing
    assert admin_api.post("/terminals/EDIT/enable", {}).json()["terminal"]["enabled"] is True
    old_hash = Terminal.objects.get(code="EDIT").api_key_hash
    key = admin_api.post("/terminals/EDIT/rotate-key", {"reason": "leak"}).json()["api_key"]
    assert Terminal.objects.get(code="EDIT").api_key_hash != old_hash
    assert terminal_authenticate(code="EDIT", key=key) is not None
    actions = list(AuditEntry.objects.exclude(action="api_token.create").order_by("pk").values_list("action", "reason"))
    assert actions == [
        ("terminal.edit", ""),
        ("terminal.disable", "stolen"),
        ("terminal.enable", ""),
        ("terminal.rotate_key", "leak"),
    ]


def test_bulk_create_all_or_nothing_with_each_key_once(admin_api):
    rows = [{"code": f"R{i:03}", "store": "Rollout"} for i in range(20)]
    response = admin_api.post("/terminals/bulk", {"terminals": rows})
    assert response.status_code == 201
    created = response.json()["created"]
    assert [c["terminal"]["code"] for c in created] == [r["code"] for r in rows]
    assert len({c["api_key"] for c in created}) == 20
    assert all(terminal_authenticate(code=c["terminal"]["code"], key=c["api_key"]) for c in created)
    # One code exists already and one appears twice: nothing at all is created, each error is named.
    again = [{"code": "R000"}, {"code": "NEW-A"}, {"code": "NEW-B"}, {"code": "NEW-B"}]
    body = assert_problem(admin_api.post("/terminals/bulk", {"terminals": again}), 409)
    assert {e["field"] for e in body["errors"]} == {"body.terminals.0.code", "body.terminals.3.code"}
    assert Terminal.objects.count() == 20
    assert_problem(admin_api.post("/terminals/bulk", {"terminals": []}), 400, "body.terminals")


def test_a_rollout_of_a_thousand_is_checked_whole_before_anything_is_made(admin_api):
    TerminalFactory(code="ROLL0950")  # past the first IN list of 900 codes
    rows = [{"code": f"ROLL{i:04}"} for i in range(1000)]
    body = assert_problem(admin_api.post("/terminals/bulk", {"terminals": rows}), 409)
    assert [e["field"] for e in body["errors"]] == ["body.terminals.950.code"]
    assert Terminal.objects.count() == 1


def test_a_terminal_whose_code_is_bulk_is_reached_like_any_other(admin_api):
    assert admin_api.get("/terminals/bulk").status_code == 404  # none yet: not a 405 of the bulk route
    assert admin_api.post("/terminals", {"code": "bulk", "name": "Till", "store": "S"}).status_code == 201
    assert admin_api.get("/terminals/bulk").json()["code"] == "bulk"
    assert admin_api.patch("/terminals/bulk", {"name": "Renamed"}).json()["name"] == "Renamed"

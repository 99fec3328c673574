"""Scenario 9: security.

- ``manage.py check --deploy`` reports nothing with production settings.
- Every console URL (found by walking the URLconf, so new pages are covered without editing
  this file): anonymous requests are sent to the login page and change nothing; a POST
  without a CSRF token is refused even for a superuser; a logged-in user without permissions
  gets 403 from every reconciliation page and action.
- Through the real gunicorn: one terminal can never read or touch another's messages or
  updates through any operation, and every operation refuses every kind of bad credentials
  with the same ``Client.AuthenticationFailed`` (``Client.TerminalDisabled`` when disabled).
"""

from __future__ import annotations

import os
import re
import secrets
from datetime import UTC, datetime

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from zeep.exceptions import Fault

from tests.chaos.load import make_client
from tests.processes import check_deploy
from tests.terminals.helpers import code_of, envelope, fault_of, post_raw
from tests.terminals.helpers import stock_message as msg

pytestmark = pytest.mark.chaos


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST_"))},
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
        "DJANGO_SECURE_SSL": "true",
        "DJANGO_ALLOWED_HOSTS": "hub.example.com",
        "DJANGO_DEBUG": "false",
        "SYNC_VAR_DIR": str(tmp_path),
    }
    done = check_deploy(env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues" in done.stdout, done.stdout


# --- console ------------------------------------------------------------------------------------------


# Deliberately public machine endpoints (observability: load balancer health, Prometheus scrape; the
# automation API's schema and docs page, which describe it and call nothing); their own tests cover
# what they reveal.
PUBLIC = {"/healthz", "/metrics", "/api/v1/docs", "/api/v1/openapi.json"}


def console_paths() -> list[str]:
    """A concrete path for every console URL pattern (ids filled with 1), SOAP and static excluded."""
    paths = []

    def walk(patterns, prefix):
        for p in patterns:
            route = str(p.pattern)
            if isinstance(p, URLResolver):
                walk(p.url_patterns, prefix + route)
            elif isinstance(p, URLPattern):
                paths.append(prefix + route)

    walk(get_resolver().url_patterns, "")
    out = []
    for route in paths:
        if route.startswith(("^soap", "soap", "static", "media")) or "login" in route or "logout" in route:
            continue
        path = "/" + route.replace("^", "").replace("$", "").replace("\\Z", "")
        path = re.sub(r"<int:\w+>", "1", path)
        path = re.sub(r"<(?:str|slug|path|uuid):\w+>|<\w+>", "x", path)
        if "<" in path or "(?P" in path or "\\" in path:
            continue  # a pattern we cannot fill generically (e.g. admin's app_label regexes)
        if path.rstrip("/") in PUBLIC:
            continue
        out.append(path)
    return sorted(set(out))


@pytest.mark.django_db
def test_anonymous_console_requests_are_redirected_and_change_nothing():
    from messages.models import Message

    paths = console_paths()
    assert len(paths) >= 8, paths
    client = Client()
    problems = []
    for path in paths:
        for method in ("get", "post"):
            response = getattr(client, method)(path)
            location = response.headers.get("Location", "")
            redirected = response.status_code == 302 and "login" in location
            # The automation API is for scripts: an anonymous call is a 401 problem, not a login page.
            refused = response.status_code == 401 and path.startswith("/api/")
            if not (redirected or refused or response.status_code in (404, 405)):
                problems.append((method, path, response.status_code, location))
    assert not problems, problems
    assert not Message.objects.exists()


@pytest.mark.django_db
def test_console_post_without_csrf_token_is_refused(django_user_model):
    admin = django_user_model.objects.create_superuser("root", "root@example.com", "pw-" + secrets.token_hex(8))
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin)
    refused = []
    for path in console_paths():
        response = client.post(path, {"reason": "x"})
        # The API's read-only endpoints take no POST at all (405): nothing there for a CSRF check to guard.
        if response.status_code != 403 and not (path.startswith("/api/") and response.status_code == 405):
            refused.append((path, response.status_code))
    assert not refused, refused


RECONCILIATION_ACTIONS = ["/reconciliation/run/", "/reconciliation/resync/", "/reconciliation/recount/"]
RECONCILIATION_PAGES = ["/reconciliation/", "/reconciliation/discrepancies/", "/reconciliation/runs/"]


@pytest.mark.django_db
def test_user_without_permissions_gets_403_for_every_reconciliation_page_and_action(django_user_model):
    user = django_user_model.objects.create_user("nobody", password="pw-" + secrets.token_hex(8))
    client = Client()
    client.force_login(user)
    for path in RECONCILIATION_PAGES:
        assert client.get(path).status_code == 403, path
    for path in [*RECONCILIATION_ACTIONS, "/reconciliation/discrepancies/1/explain/"]:
        assert client.post(path, {"terminal": "T", "entity_type": "product"}).status_code == 403, path


# --- SOAP: tenant isolation and authentication, through the real gunicorn ----------------------------


OPERATIONS = {
    "SubmitMessages": {"messages": {"SyncMessage": [msg("x")]}},
    "GetMessageStatus": {"messageIds": {"string": ["x"]}},
    "FetchUpdates": {"maxCount": 10},
    "AckUpdates": {"updateIds": {"string": ["x"]}},
    "Heartbeat": {"info": {"AppVersion": "1", "LocalBacklog": 0, "TerminalTime": datetime.now(UTC)}},
    "ReportCounts": {"counts": {"EntityCount": [{"EntityType": "product", "Count": 1, "AsOf": datetime.now(UTC)}]}},
}


def test_one_terminal_never_sees_or_touches_anothers_data(stack):
    web = stack.start_web(workers=2)
    url = stack.soap_url(web)
    creds = stack.create_terminals(2, prefix="ISO")
    (a, key_a), (b, key_b) = sorted(creds.items())
    ca, cb = make_client(url, a, key_a), make_client(url, b, key_b)
    assert [
        r.Status for r in ca.service.SubmitMessages(messages={"SyncMessage": [msg("shared-id"), msg("a-only")]})
    ] == [
        "Accepted",
        "Accepted",
    ]
    update_id = stack.python(
        "from terminals.models import Terminal; from messages import outbound\n"
        f"print(outbound.update_create(terminal=Terminal.objects.get(code={a!r}), update_type='resync').update_id)"
    ).strip()

    # GetMessageStatus: B cannot see A's messages
    states = cb.service.GetMessageStatus(messageIds={"string": ["a-only", "shared-id"]})
    assert [s.State for s in states] == ["Unknown", "Unknown"]
    # SubmitMessages: the same id is B's own message, not a Duplicate of A's; A's row is untouched
    assert [r.Status for r in cb.service.SubmitMessages(messages={"SyncMessage": [msg("shared-id")]})] == ["Accepted"]
    assert stack.scalar("SELECT count(*) FROM queue_messages_message WHERE message_id = 'shared-id'") == 2
    # FetchUpdates / Heartbeat: B sees none of A's updates
    assert not cb.service.FetchUpdates(maxCount=500)
    assert cb.service.Heartbeat(info=OPERATIONS["Heartbeat"]["info"]).PendingUpdates == 0
    # AckUpdates: B cannot acknowledge A's update
    assert cb.service.AckUpdates(updateIds={"string": [update_id]}) == 0
    assert (
        stack.scalar("SELECT state FROM queue_messages_outboundupdate WHERE update_id = %s", (update_id,)) == "Pending"
    )
    # ReportCounts: stored for B only
    cb.service.ReportCounts(**OPERATIONS["ReportCounts"])
    codes = {
        r[0]
        for r in stack.query(
            "SELECT t.code FROM reconciliation_reportedcount rc JOIN terminals_terminal t ON t.id = rc.terminal_id"
        )
    }
    assert codes == {b}
    # and A still sees exactly its own
    assert [u.UpdateId for u in ca.service.FetchUpdates(maxCount=500)] == [update_id]
    assert [s.State for s in ca.service.GetMessageStatus(messageIds={"string": ["a-only"]})] == ["Received"]


def test_every_operation_refuses_every_kind_of_bad_credentials(stack):
    web = stack.start_web(workers=2)
    url = stack.soap_url(web)
    creds = stack.create_terminals(3, prefix="AUTH")
    (a, key_a), (b, key_b), (c, key_c) = sorted(creds.items())
    stack.python(f"from terminals.models import Terminal; Terminal.objects.filter(code={c!r}).update(enabled=False)")
    cases = {
        "wrong key": (make_client(url, a, key_a + "x"), "Client.AuthenticationFailed"),
        "unknown terminal": (make_client(url, "NOPE-1", key_a), "Client.AuthenticationFailed"),
        "another terminal's key": (make_client(url, a, key_b), "Client.AuthenticationFailed"),
        "empty key": (make_client(url, a, ""), "Client.AuthenticationFailed"),
        "disabled terminal": (make_client(url, c, key_c), "Client.TerminalDisabled"),
    }
    for name, (client, expected) in cases.items():
        for op, kwargs in OPERATIONS.items():
            with pytest.raises(Fault) as exc:
                getattr(client.service, op)(**kwargs)
            assert code_of(exc.value) == expected, (name, op, code_of(exc.value))
    # no header at all, and a PasswordDigest token (not offered), on every operation, raw
    digest = (
        '<wsse:Security xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd">'
        f"<wsse:UsernameToken><wsse:Username>{a}</wsse:Username><wsse:Password Type="
        '"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest">'
        f"{key_a}</wsse:Password></wsse:UsernameToken></wsse:Security>"
    )
    bodies = {
        "SubmitMessages": "<t:SubmitMessages><t:messages/></t:SubmitMessages>",
        "GetMessageStatus": "<t:GetMessageStatus><t:messageIds/></t:GetMessageStatus>",
        "FetchUpdates": "<t:FetchUpdates><t:maxCount>1</t:maxCount></t:FetchUpdates>",
        "AckUpdates": "<t:AckUpdates><t:updateIds/></t:AckUpdates>",
        "Heartbeat": "<t:Heartbeat><t:info/></t:Heartbeat>",
        "ReportCounts": "<t:ReportCounts><t:counts/></t:ReportCounts>",
    }
    for op, body in bodies.items():
        for header in ("", digest):
            assert fault_of(post_raw(url, envelope(body, header)))[0] == "Client.AuthenticationFailed", op
    assert stack.scalar("SELECT count(*) FROM queue_messages_message") == 0
    logs = web.log_tail(10**7)
    assert key_a not in logs and key_b not in logs and key_c not in logs  # keys are never logged

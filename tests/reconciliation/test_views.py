from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from messages.models import EntityCounter, OutboundUpdate
from reconciliation import reports, services
from reconciliation.models import Discrepancy, ReconciliationRun, RunTrigger
from syncadmin.models import AuditEntry
from tests.reconciliation.helpers import drain_all, env, ingest

pytestmark = pytest.mark.django_db

VIEWER = ["view_discrepancy"]
SUPPORT = VIEWER + ["run_reconciliation", "request_resync", "explain_discrepancy"]
ADMIN = SUPPORT + ["recount_counters"]


def user_with(client, name, codenames):
    user = User.objects.create_user(name)  # no password: force_login, no slow hashing
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="reconciliation", codename__in=codenames)
    )
    client.force_login(user)
    return user


@pytest.fixture
def gap(terminal):
    """A finished run with a real gap for T0001/product (terminal 5, centre 2)."""
    ingest(terminal, env("a", "A"), env("b", "B"))
    drain_all()
    reports.reported_counts_store(terminal=terminal, counts=[("product", 5, datetime.now(UTC) + timedelta(seconds=1))])
    run = services.run_now(trigger=RunTrigger.COMMAND, triggered_by="test")
    return Discrepancy.objects.get(run=run)


CELL = "?terminal=T0001&entity_type=product"
PAGES = [
    reverse("reconciliation:matrix"),
    reverse("reconciliation:discrepancies"),
    reverse("reconciliation:runs"),
    reverse("reconciliation:cell") + CELL,
]


@pytest.mark.parametrize("url", PAGES)
def test_anonymous_is_sent_to_login(client, url):
    response = client.get(url)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


@pytest.mark.parametrize("url", PAGES)
def test_user_without_permission_is_refused(client, url):
    user_with(client, "nobody", [])
    assert client.get(url).status_code == 403


def test_viewer_sees_every_page_but_no_action_buttons(client, gap):
    user_with(client, "vera", VIEWER)
    matrix = client.get(reverse("reconciliation:matrix"))
    assert matrix.status_code == 200
    html = matrix.content.decode()
    assert 'class="c-gap"' in html and "+3" in html and "Run now" not in html
    assert "/reconciliation/cell/?terminal=T0001&amp;entity_type=product" in html
    lst = client.get(reverse("reconciliation:discrepancies")).content.decode()
    assert "T0001" in lst and "Gap" in lst
    run_page = client.get(reverse("reconciliation:run_detail", args=[gap.run_id]))
    assert run_page.status_code == 200 and "T0001" in run_page.content.decode()
    runs = client.get(reverse("reconciliation:runs")).content.decode()
    assert f"#{gap.run_id}" in runs or f">{gap.run_id}<" in runs
    cell = client.get(reverse("reconciliation:cell") + CELL).content.decode()
    assert "/messages/?terminal=T0001&amp;entity_type=product" in cell
    assert "<svg" in cell and "Mark explained" not in cell and "Request resync" not in cell


@pytest.mark.parametrize(
    "name,data",
    [
        ("run_now", {}),
        ("resync", {"terminal": "T0001", "entity_type": "product"}),
        ("recount", {"terminal": "T0001", "entity_type": "product"}),
    ],
)
def test_viewer_cannot_act(client, gap, name, data):
    user_with(client, "vera", VIEWER)
    assert client.post(reverse(f"reconciliation:{name}"), data).status_code == 403
    assert client.post(reverse("reconciliation:explain", args=[gap.pk]), {"note": "x"}).status_code == 403
    assert not OutboundUpdate.objects.exists() and not AuditEntry.objects.exists()


def test_support_requests_resync_and_explains_but_cannot_recount(client, gap):
    user_with(client, "sue", SUPPORT)
    response = client.post(
        reverse("reconciliation:resync"), {"terminal": "T0001", "entity_type": "product", "reason": "gap"}
    )
    assert response.status_code == 302
    update = OutboundUpdate.objects.get()
    assert (update.update_type, update.entity_key, update.created_by) == ("resync.request", "product", "user:sue")
    response = client.post(reverse("reconciliation:explain", args=[gap.pk]), {"note": "receipts lost in a flood"})
    assert response.status_code == 302
    gap.refresh_from_db()
    assert gap.explained_by == "user:sue" and gap.note == "receipts lost in a flood"
    assert client.post(reverse("reconciliation:recount"), {}).status_code == 403
    cell = client.get(reverse("reconciliation:cell") + CELL).content.decode()
    assert "receipts lost in a flood" in cell
    matrix = client.get(reverse("reconciliation:matrix")).content.decode()
    assert 'class="c-explained"' in matrix


def test_bad_input_gets_a_clear_answer_and_changes_nothing(client, gap):
    user_with(client, "sue", SUPPORT)
    response = client.post(reverse("reconciliation:explain", args=[gap.pk]), {"note": "   "}, follow=True)
    assert response.status_code == 200 and "A note is required" in response.content.decode()
    assert Discrepancy.objects.get(pk=gap.pk).explained_at is None
    response = client.post(reverse("reconciliation:resync"), {"terminal": "T0001", "entity_type": "Bad!"}, follow=True)
    assert "not a valid entity type" in response.content.decode()
    assert (
        client.post(reverse("reconciliation:resync"), {"terminal": "NOPE", "entity_type": "product"}).status_code == 404
    )
    assert client.post(reverse("reconciliation:resync"), {}).status_code == 400
    assert client.get(reverse("reconciliation:cell")).status_code == 400
    assert not OutboundUpdate.objects.exists()


def test_admin_recounts_a_drifted_counter(client, gap):
    user_with(client, "tara", ADMIN)
    EntityCounter.objects.update(live_count=7)
    response = client.post(
        reverse("reconciliation:recount"),
        {"terminal": "T0001", "entity_type": "product", "reason": "drift"},
        follow=True,
    )
    assert "T0001/product: 7 → 2" in response.content.decode()
    assert EntityCounter.objects.get().live_count == 2
    assert AuditEntry.objects.get(action="reconciliation.recount").actor == "user:tara"


def test_run_now_queues_a_run(client, terminal, monkeypatch, django_capture_on_commit_callbacks):
    queued = []
    monkeypatch.setattr(services, "run_enqueue", queued.append)
    user_with(client, "sue", SUPPORT)
    assert client.get(reverse("reconciliation:run_now")).status_code == 405  # POST only
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("reconciliation:run_now"))
    assert response.status_code == 302
    run = ReconciliationRun.objects.get()
    assert queued == [run.pk] and run.triggered_by == "user:sue"


def test_csrf_is_enforced_on_actions(gap):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    user_with(client, "sue", SUPPORT)
    assert client.post(reverse("reconciliation:run_now")).status_code == 403
    assert not ReconciliationRun.objects.exclude(pk=gap.run_id).exists()


def test_list_returns_the_table_partial_for_htmx(client, gap):
    user_with(client, "vera", VIEWER)
    response = client.get(reverse("reconciliation:discrepancies"), {"kind": "gap"}, headers={"HX-Request": "true"})
    html = response.content.decode()
    assert response.status_code == 200 and "T0001" in html and "<html" not in html
    response = client.get(reverse("reconciliation:discrepancies"), {"kind": "stale"}, headers={"HX-Request": "true"})
    assert "T0001" not in response.content.decode()


def test_matrix_filters_to_problem_terminals(client, gap):
    from tests.factories import TerminalFactory

    calm = TerminalFactory(code="CALM1")
    ingest(calm, env("c", "C"))
    drain_all()
    services.run_now(trigger=RunTrigger.COMMAND, triggered_by="test")
    user_with(client, "vera", VIEWER)
    html = client.get(reverse("reconciliation:matrix")).content.decode()
    assert "CALM1" in html and "T0001" in html
    html = client.get(reverse("reconciliation:matrix"), {"only": "problems"}).content.decode()
    assert "CALM1" not in html and "T0001" in html
    html = client.get(reverse("reconciliation:matrix"), {"terminal": "CAL"}).content.decode()
    assert "CALM1" in html and "<th>T0001</th>" not in html


def test_matrix_escapes_terminal_codes_and_reported_types(client):
    from tests.factories import TerminalFactory

    odd = TerminalFactory(code="<b>T&1</b>")
    reports.reported_counts_store(terminal=odd, counts=[('x"><script>y', 1, datetime.now(UTC))])
    services.run_now(trigger=RunTrigger.COMMAND, triggered_by="test")
    user_with(client, "vera", VIEWER)
    html = client.get(reverse("reconciliation:matrix")).content.decode()
    assert "<b>T&1</b>" not in html and "<script>y" not in html
    assert "&lt;b&gt;T&amp;1&lt;/b&gt;" in html and "terminal=%3Cb%3ET%261%3C%2Fb%3E" in html
    cell = client.get(reverse("reconciliation:cell"), {"terminal": "<b>T&1</b>", "entity_type": 'x"><script>y'})
    assert cell.status_code == 200 and "<script>y" not in cell.content.decode()


# --- hostile input (issue 15) ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["reconciliation:discrepancies", "reconciliation:runs"])
def test_invalid_filter_lists_nothing_and_says_why(client, gap, name):
    user_with(client, "val", VIEWER)
    # An invalid filter used to be ignored: the page listed every row as if it had applied.
    response = client.get(reverse(name), {"kind": "bogus", "status": "bogus"})
    assert response.status_code == 200 and b"Some filters are not valid" in response.content
    assert len(response.context["table"].page.object_list) == 0
    assert len(client.get(reverse(name)).context["table"].page.object_list) == 1


@pytest.mark.parametrize("per_page", ["-1", str(-(2**63) - 1)])
def test_request_cannot_set_the_page_size(client, gap, per_page):
    user_with(client, "pp", VIEWER)
    for name in ("reconciliation:discrepancies", "reconciliation:runs"):
        assert client.get(reverse(name), {"per_page": per_page}).status_code == 200  # was EmptyPage: a 500
    assert (
        client.get(reverse("reconciliation:run_detail", args=[gap.run_id]), {"per_page": per_page}).status_code == 200
    )

"""Reconciliation through the API: start a run (queued, audited), get it, the matrix, open discrepancies, resync."""

from datetime import UTC, datetime, timedelta

import pytest

from messages.models import OutboundUpdate
from reconciliation import reports
from reconciliation import services as reconciliation_services
from reconciliation.models import ReconciliationRun, RunTrigger
from syncadmin.models import AuditEntry
from tests.factories import TerminalFactory
from tests.reconciliation.helpers import drain_all, env, ingest
from tests.syncadmin.api.conftest import assert_problem

pytestmark = pytest.mark.django_db


@pytest.fixture
def finished_run():
    """A real run that finds a gap: two products applied, the terminal reports five."""
    terminal = TerminalFactory(code="REC1")
    ingest(terminal, env("rec-a", "A"), env("rec-b", "B"))
    drain_all()
    reports.reported_counts_store(terminal=terminal, counts=[("product", 5, datetime.now(UTC) + timedelta(seconds=1))])
    return reconciliation_services.run_now(trigger=RunTrigger.COMMAND, triggered_by="test")


def test_start_a_run_and_get_it(admin_api, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        response = admin_api.post("/reconciliation/runs")
    assert response.status_code == 202 and response.json()["status"] == "queued"
    run_id = response.json()["id"]
    assert AuditEntry.objects.get(action="reconciliation.run").object_id == str(run_id)
    reconciliation_services.run_execute(run_id=run_id)
    assert admin_api.get(f"/reconciliation/runs/{run_id}").json()["status"] == "done"
    assert [r["id"] for r in admin_api.get("/reconciliation/runs").json()["items"]] == [run_id]
    assert_problem(admin_api.get("/reconciliation/runs/99999"), 404)


def test_matrix_and_open_discrepancies(admin_api, finished_run):
    matrix = admin_api.get("/reconciliation/matrix").json()
    assert matrix["run"]["id"] == finished_run.pk and "REC1" in matrix["terminals"]
    column = matrix["entity_types"].index("product")
    assert matrix["rows"]["REC1"][column][0] == "g"  # a real gap
    (gap,) = admin_api.get("/reconciliation/discrepancies").json()
    assert (gap["terminal_code"], gap["kind"], gap["delta"]) == ("REC1", "gap", 3)


def test_matrix_before_any_run(admin_api):
    assert admin_api.get("/reconciliation/matrix").json() == {
        "run": None,
        "entity_types": [],
        "terminals": [],
        "rows": {},
    }
    assert ReconciliationRun.objects.count() == 0


def test_resync_reaches_the_terminal_and_is_audited(admin_api):
    TerminalFactory(code="RS1")
    response = admin_api.post("/reconciliation/resync", {"terminal": "RS1", "entity_type": "product", "reason": "gap"})
    assert response.status_code == 202
    update = OutboundUpdate.objects.get(update_id=response.json()["update_id"])
    assert update.terminal.code == "RS1" and update.entity_key == "product"
    assert AuditEntry.objects.get(action="reconciliation.resync").reason == "gap"
    bad = admin_api.post("/reconciliation/resync", {"terminal": "RS1", "entity_type": "Not A Type"})
    assert_problem(bad, 400, "body.entity_type")
    assert_problem(admin_api.post("/reconciliation/resync", {"terminal": "NOPE", "entity_type": "product"}), 404)

"""A short simulator run against the live server: its summary must match what the hub stored."""

import io

import pytest
from django.core.management import call_command

from messages import outbound
from messages.models import Message, OutboundUpdate, UpdateState
from reconciliation.models import ReportedCount
from terminals.models import Terminal
from terminals.simulator import SimConfig, ensure_terminals, run_simulation

pytestmark = pytest.mark.django_db(transaction=True)


def test_simulated_terminals_drive_every_operation(soap_url, tmp_path):
    # Two terminals at once, on both databases (SQLite's test database is a WAL file with a busy
    # timeout, as the product's is: settings.py).
    n = 2
    credentials = ensure_terminals(count=n, keys_file=tmp_path / "keys.json")
    assert sorted(credentials) == ["SIM-001", "SIM-002"][:n]
    update = outbound.update_create(terminal=Terminal.objects.get(code="SIM-001"), update_type="resync")
    config = SimConfig(url=soap_url, terminals=2, rate=40, duration=3, bad_fraction=0.2, duplicate_fraction=0.3, seed=7)
    summary = run_simulation(config, credentials)
    assert summary.faults == {} and summary.errors == {}
    assert summary.sent > 100
    assert summary.accepted + summary.duplicates + summary.rejected == summary.sent
    assert summary.rejected > 0 and summary.bad_sent >= summary.rejected  # missing MessageId is one bad kind
    assert Message.objects.count() == summary.accepted
    assert set(Message.objects.values_list("terminal__code", flat=True)) == set(credentials)
    # Entities repeat, so sequences climb per entity.
    assert Message.objects.filter(sequence__gt=1).exists()
    assert summary.heartbeats >= n and Terminal.objects.filter(app_version="sim-1.0").count() == n
    assert ReportedCount.objects.count() == summary.counts_reported > 0
    assert summary.updates_fetched == 1 and summary.updates_acked == 1
    assert OutboundUpdate.objects.get(pk=update.pk).state == UpdateState.ACKNOWLEDGED
    assert summary.percentile("SubmitMessages", 50) > 0
    rendered = summary.render()
    for word in ("sent=", "accepted=", "duplicates=", "rejected=", "faults=", "p50=", "p95=", "p99="):
        assert word in rendered


def test_ensure_terminals_reuses_known_keys_and_rotates_unknown_ones(tmp_path, transactional_db):
    keys = tmp_path / "keys.json"
    first = ensure_terminals(count=2, keys_file=keys)
    assert ensure_terminals(count=2, keys_file=keys) == first
    keys.unlink()
    rotated = ensure_terminals(count=2, keys_file=keys)
    assert rotated["SIM-001"] != first["SIM-001"]


def test_simulate_terminals_command_prints_a_summary(soap_url, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    out = io.StringIO()
    call_command(
        "simulate_terminals", "--terminals", "1", "--rate", "20", "--duration", "1.5", "--url", soap_url, stdout=out
    )
    text = out.getvalue()
    assert "accepted=" in text and "faults=0" in text
    assert Message.objects.filter(terminal__code="SIM-001").exists()

"""Data migrations of reconciliation/, run from their previous state on the real database."""

from datetime import UTC, datetime, timedelta

import pytest

from tests.migrations import migrate

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("reconciliation", "0003_group_permissions")]
AFTER = [("reconciliation", "0004_drop_future_dated_reports")]


def test_reports_dated_beyond_the_clock_skew_after_their_receipt_are_dropped(settings):
    settings.SYNC_MAX_CLOCK_SKEW_SECONDS = 900
    apps = migrate(BEFORE)
    try:
        Terminal = apps.get_model("terminals", "Terminal")
        ReportedCount = apps.get_model("reconciliation", "ReportedCount")
        terminal = Terminal.objects.create(code="T-MIG", name="", api_key_hash="x" * 64)
        received = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
        as_ofs = {
            "placeholder": datetime(9999, 12, 31, tzinfo=UTC),  # the pinning kind: dropped
            "clock-fast": received + timedelta(seconds=901),  # beyond the allowance: dropped
            "within": received + timedelta(seconds=899),  # a clock a little fast: kept
            "past": received - timedelta(days=1),  # kept
        }
        for entity, as_of in as_ofs.items():
            row = ReportedCount.objects.create(terminal=terminal, entity_type=entity, count=1, as_of=as_of)
            ReportedCount.objects.filter(pk=row.pk).update(received_at=received)  # auto_now_add otherwise
    finally:
        apps = migrate(AFTER)
    try:
        kept = apps.get_model("reconciliation", "ReportedCount").objects.values_list("entity_type", flat=True)
        assert sorted(kept) == ["past", "within"]
    finally:
        migrate()  # back to every app's latest (AFTER is not the last migration any more): the next tests' schema

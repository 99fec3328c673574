"""syncadmin 0005 and its two partners: DeadLetterGroupNote and TerminalHealthSnapshot change app, not table.

Run from the state before the move on the real database: rows written under the old app are
read under the new one, the content types (and so the permissions granted on them) move with
the models, and migrating back and forth again changes nothing.
"""

from datetime import UTC, datetime

import pytest
from django.db import connection

from tests.migrations import migrate

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [
    ("syncadmin", "0004_merge_console_observability"),
    ("queue_messages", "0006_fewer_index_writes"),
    ("terminals", "0002_used_nonce"),
]


def test_the_moved_models_keep_their_tables_rows_and_content_types():
    apps = migrate()
    ContentType = apps.get_model("contenttypes", "ContentType")
    note_type = ContentType.objects.get_or_create(app_label="queue_messages", model="deadlettergroupnote")[0]
    snapshot_type = ContentType.objects.get_or_create(app_label="terminals", model="terminalhealthsnapshot")[0]
    apps = migrate(BEFORE)
    try:
        # Under the old app: the content types moved back with the models.
        ContentType = apps.get_model("contenttypes", "ContentType")
        assert ContentType.objects.get(pk=note_type.pk).app_label == "syncadmin"
        assert ContentType.objects.get(pk=snapshot_type.pk).app_label == "syncadmin"
        Terminal = apps.get_model("terminals", "Terminal")
        terminal = Terminal.objects.create(code="T-MOVE", name="", api_key_hash="x" * 64)
        apps.get_model("syncadmin", "DeadLetterGroupNote").objects.create(
            grouping="reason", key="ValueError: #", note="ask HQ", updated_by="user:sam"
        )
        apps.get_model("syncadmin", "TerminalHealthSnapshot").objects.create(
            terminal=terminal, level="degraded", reasons=["no heartbeat yet"], computed_at=datetime.now(UTC)
        )
    finally:
        apps = migrate()
    note = apps.get_model("queue_messages", "DeadLetterGroupNote").objects.get()
    assert (note.grouping, note.key, note.note, note.updated_by) == ("reason", "ValueError: #", "ask HQ", "user:sam")
    snapshot = apps.get_model("terminals", "TerminalHealthSnapshot").objects.get()
    assert (snapshot.terminal.code, snapshot.level, snapshot.reasons) == ("T-MOVE", "degraded", ["no heartbeat yet"])
    ContentType = apps.get_model("contenttypes", "ContentType")
    assert ContentType.objects.get(pk=note_type.pk).app_label == "queue_messages"
    assert ContentType.objects.get(pk=snapshot_type.pk).app_label == "terminals"
    tables = set(connection.introspection.table_names())
    assert {"syncadmin_deadlettergroupnote", "syncadmin_terminalhealthsnapshot"} <= tables

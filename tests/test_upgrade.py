"""An installation of every recorded release upgrades to today's code without losing or changing anything.

One case per release recorded in CHANGELOG.md (tests/releases.py). Each follows the order of
docs/operations/upgrades.md: the release's database, built by its own migrations and filled
through its own models (tests/upgrade_data.py) while its workers hold leases; then `migrate`
(the real command, post_migrate and all); then the new workers; then the web; and last the
rollback, back to the release's migrations. Every table that
existed before is read back row by row, byte for byte, and the only differences allowed are the
ones a migration of the upgrade is there to make, each named below. Then the new code reads the
data for its meaning: states, keys, permissions, the moved models.
"""

from collections import Counter
from datetime import UTC, datetime

import pytest
from django.apps import apps as global_apps
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.recorder import MigrationRecorder
from django.test import Client
from django_q.models import Schedule

from messages import services
from messages.models import DeadLetter, DeadLetterGroupNote, Message, MessageEvent, MessageState
from reconciliation.models import ReportedCount
from terminals.models import TerminalHealthSnapshot
from terminals.services import terminal_authenticate
from tests.migrations import applied_by, database_build_at, release_targets
from tests.releases import releases_recorded
from tests.upgrade_data import PASSWORD, PER_STATE, fill, model_named, tables_read

pytestmark = pytest.mark.django_db(transaction=True)

# What each migration of an upgrade is there to change, and so the only differences allowed.
MOVES_CONTENT_TYPES = ("syncadmin", "0005_models_moved_to_their_apps")
MOVED_MODELS = {"deadlettergroupnote": "queue_messages", "terminalhealthsnapshot": "terminals"}
REWRITES_SCHEDULES = ("queue_messages", "0008_schedule_task_paths")
DROPS_FUTURE_REPORTS = ("reconciliation", "0004_drop_future_dated_reports")
GROUP_TRIAGE = ("queue_messages", "0010_group_triage")  # issue 20: group notes gain a triage, a new permission
TRIAGERS = ("Support", "Terminal admins")  # the groups GROUP_TRIAGE grants it to
# Columns a migration adds to an existing table, each with the value every row already there reads.
ADDED_COLUMNS = {
    ("queue_messages", "0012_bulkjob_rate"): {
        "queue_messages_bulkjob": {
            "rate": None, "paused_at": None, "paused_by": "", "pause_reason": "", "paused_seconds": 0.0,
        },
    },
    # The store hours (issue 20's alerts), blank on every terminal already there.
    ("terminals", "0004_store_hours"): {"terminals_terminal": {"time_zone": "", "opens_at": None, "closes_at": None}},
}  # fmt: skip
# Columns a migration moves out of a table into a new one, keyed by the same id: every old row's
# values must be in the new table's row with its id (no row more, none less), and the rest of the
# old row unchanged; the new table's other columns are copies of old columns that stay (new name:
# old name). 0013 (issue 18) moves the queue state into a narrow table of its own, with the
# receipt time and terminal beside it for the state filter's index.
STATE_COLUMNS = ("state", "attempts", "next_attempt_at", "lease_owner", "lease_expires_at", "last_error",
                 "updated_at", "processed_at")  # fmt: skip
MOVED_COLUMNS = {
    ("queue_messages", "0013_queue_state_table"): {
        "queue_messages_message": (
            "queue_messages_messagestate", STATE_COLUMNS,
            {"queued_at": "received_at", "queue_terminal_id": "terminal_id"},
        ),
    },
}  # fmt: skip
# Gives every console group the alerts pages, and Terminal admins the rules' editing (issue 20).
GRANTS_ALERTS = ("reconciliation", "0005_alerts")
ALERT_VIEW = {("reconciliation", "view_incident"), ("reconciliation", "view_alertrule")}
ALERT_PERMS = {"Viewers": ALERT_VIEW, "Support": ALERT_VIEW,
               "Terminal admins": ALERT_VIEW | {("reconciliation", "change_alertrule")}}  # fmt: skip
GRANTS_PAUSE = ("queue_messages", "0009_queue_pauses")  # pause_queue to the groups that can retry
GRANTS_SHARE_VIEW = ("queue_messages", "0011_saved_views")  # a new permission, given to Terminal admins
# The grants each migration gives, as (group, app label, codename).
NEW_GRANTS = {
    GRANTS_PAUSE: {(group, "queue_messages", "pause_queue") for group in ("Support", "Terminal admins")},
    GROUP_TRIAGE: {(group, "queue_messages", "triage_deadletter") for group in TRIAGERS},
    GRANTS_SHARE_VIEW: {("Terminal admins", "queue_messages", "share_savedview")},
    GRANTS_ALERTS: {(group, app, codename) for group, perms in ALERT_PERMS.items() for app, codename in perms},
}
# Tables read separately below: the migration records, and the six a migration or post_migrate writes.
READ_SEPARATELY = {
    "django_migrations",
    "django_content_type",
    "auth_permission",
    "auth_group_permissions",
    "django_q_schedule",
    "reconciliation_reportedcount",
    "syncadmin_deadlettergroupnote",
}


def _leaves():
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


@pytest.fixture
def back_at_head():
    yield
    # Whatever the test did, the tests after it get today's schema (and fresh content types).
    call_command("migrate", interactive=False, verbosity=0)
    ContentType.objects.clear_cache()


@pytest.mark.parametrize("release", releases_recorded(), ids=lambda release: release.name)
def test_an_installation_of_the_release_upgrades_without_losing_or_changing_anything(release, back_at_head):
    targets = release_targets(release.migrations)
    old_apps = database_build_at(targets)
    ContentType.objects.clear_cache()
    # The workers are kept running: their leases stay in the rows (docs, "Upgrade order").
    now = datetime.now(UTC)
    filled = fill(old_apps, now)
    before = tables_read()
    upgrade = applied_by(_leaves()) - applied_by(targets)

    call_command("migrate", interactive=False, verbosity=0)
    ContentType.objects.clear_cache()

    after = tables_read()
    assert MigrationRecorder(connection).applied_migrations().keys() == applied_by(_leaves())
    moved = _moved_columns(before, after, upgrade)
    for table, rows in before.items():
        if table not in READ_SEPARATELY | moved:
            assert _without_added_columns(after.get(table), table, upgrade) == rows, f"{table} changed"
    _content_types_and_permissions(before, after, upgrade)
    granted = _group_grants(before, after, upgrade)
    _schedules(before, after, upgrade)
    _reports(before, after, filled, upgrade)
    _group_notes(before, after, upgrade)
    _meaning(filled, granted)
    _new_workers_drain(filled)
    _new_web_serves(filled)
    _rollback(targets, filled)


def _without_added_columns(rows, table, upgrade):
    """``rows`` as they read before the upgrade: each column a migration added holds its default, then goes."""
    added = {}
    for migration, tables in ADDED_COLUMNS.items():
        if migration in upgrade:
            added.update(tables.get(table, {}))
    if not added or rows is None:
        return rows
    for row in rows:
        assert {name: value for name, value in row if name in added} == added, f"{table}: an added column's value"
    return sorted((tuple((name, value) for name, value in row if name not in added) for row in rows), key=repr)


def _moved_columns(before, after, upgrade) -> set[str]:
    """Each column a migration of the upgrade moves (MOVED_COLUMNS) is checked where it went; returns the old tables.

    Compared by column name: SQLite rebuilds a table to drop a column, which can reorder the rest.
    """
    checked = set()
    for migration, tables in MOVED_COLUMNS.items():
        if migration not in upgrade:
            continue
        for table, (new_table, columns, copies) in tables.items():
            old = _rows(before[table])
            moved = {
                pk: {
                    "id": pk,
                    **{name: row[name] for name in columns},
                    **{new: row[name] for new, name in copies.items()},
                }
                for pk, row in old.items()
            }
            kept = {pk: {name: value for name, value in row.items() if name not in columns} for pk, row in old.items()}
            assert _rows(after[new_table]) == moved, f"{table}: the columns moved to {new_table}"
            assert _rows(_without_added_columns(after[table], table, upgrade)) == kept, f"{table} changed"
            checked.add(table)
    return checked


def _rows(table_rows):
    return {dict(row)["id"]: dict(row) for row in table_rows}


def _content_types_and_permissions(before, after, upgrade):
    expected = _rows(before["django_content_type"])
    if MOVES_CONTENT_TYPES in upgrade:
        for row in expected.values():
            if row["app_label"] == "syncadmin" and row["model"] in MOVED_MODELS:
                row["app_label"] = MOVED_MODELS[row["model"]]
    found = _rows(after["django_content_type"])
    assert {pk: found.get(pk) for pk in expected} == expected
    # New models get their content type and permissions from migrate's post_migrate; none goes.
    permissions = _rows(after["auth_permission"])
    assert {pk: permissions.get(pk) for pk in _rows(before["auth_permission"])} == _rows(before["auth_permission"])


def _group_grants(before, after, upgrade) -> set[tuple[str, str, str]]:
    """Every group keeps its grants; the only new ones are those a migration of the upgrade gives.

    Returns them as (group, app label, codename).
    """
    expected = _rows(before["auth_group_permissions"])
    found = _rows(after["auth_group_permissions"])
    assert {pk: found.get(pk) for pk in expected} == expected
    permissions, groups = _rows(after["auth_permission"]), _rows(after["auth_group"])
    content_types = _rows(after["django_content_type"])
    new = set()
    for pk, row in found.items():
        if pk not in expected:
            permission = permissions[row["permission_id"]]
            app_label = content_types[permission["content_type_id"]]["app_label"]
            new.add((groups[row["group_id"]]["name"], app_label, permission["codename"]))
    assert new == set().union(*(grants for migration, grants in NEW_GRANTS.items() if migration in upgrade))
    return new


def _schedules(before, after, upgrade):
    # The operator's own schedules stay as they were, the moved task's path rewritten; the
    # declared ones are what post_migrate (re)writes, with today's paths.
    expected = _rows(before["django_q_schedule"])
    if REWRITES_SCHEDULES in upgrade:
        for row in expected.values():
            if row["func"] == "messages.tasks_scale.purge":
                row["func"] = "messages.tasks.purge"
    found = _rows(after["django_q_schedule"])
    assert {pk: found.get(pk) for pk in expected} == expected
    declared = {name: func for config in global_apps.get_app_configs() for name, func, _ in _declared(config)}
    stored = dict(Schedule.objects.values_list("name", "func"))
    assert stored == {**{row["name"]: row["func"] for row in expected.values()}, **declared}


def _declared(config):
    return config.schedules() if hasattr(config, "schedules") else []


def _reports(before, after, filled, upgrade):
    kept = filled.kept_reports | (set() if DROPS_FUTURE_REPORTS in upgrade else filled.future_reports)
    assert set(ReportedCount.objects.values_list("pk", flat=True)) == kept
    old = _rows(before["reconciliation_reportedcount"])
    assert _rows(after["reconciliation_reportedcount"]) == {pk: old[pk] for pk in kept}


def _group_notes(before, after, upgrade):
    """Each group note gains an empty triage (new, nobody, no ticket); nothing else in it changes."""
    notes = _rows(before["syncadmin_deadlettergroupnote"])
    for row in notes.values():
        row.update({"owner": "", "status": "new", "ticket_url": ""} if GROUP_TRIAGE in upgrade else {})
    assert _rows(after["syncadmin_deadlettergroupnote"]) == notes


def _meaning(filled, granted):
    """Today's code reads the upgraded rows as the release wrote them (``granted``: the upgrade's new grants)."""
    assert Counter(Message.objects.values_list("state", flat=True)) == {state: PER_STATE for state in MessageState}
    for pk, fields in filled.messages.items():
        message = Message.objects.get(pk=pk)
        assert {name: getattr(message, name) for name in fields} == fields  # timestamps to the microsecond
    events = MessageEvent.objects.values_list("pk", "message_id", "from_state", "to_state", "at", "actor")
    assert {pk: rest for pk, *rest in events} == {pk: list(event) for pk, event in filled.events.items()}
    open_letters = DeadLetter.objects.filter(resolution="").select_related("message")
    assert sorted(d.message.state for d in open_letters) == [MessageState.DEAD_LETTERED] * PER_STATE
    assert DeadLetterGroupNote.objects.get(pk=filled.note_id).note == "ask HQ"
    snapshot = TerminalHealthSnapshot.objects.select_related("terminal").get()
    assert (snapshot.terminal.code, snapshot.reasons) == (filled.snapshot_terminal_code, ["no heartbeat for 10 min"])
    for code, key in filled.keys.items():
        assert terminal_authenticate(code=code, key=key).code == code  # a disabled one too: its caller refuses it
        assert terminal_authenticate(code=code, key=key + "x") is None
    for group, perms in filled.group_perms.items():
        user = get_user_model().objects.get(username=group.lower().replace(" ", "_"))
        assert user.check_password(PASSWORD)
        moved = {(MOVED_MODELS.get(codename.split("_", 1)[1], app), codename) for app, codename in perms}
        moved |= {(app, codename) for name, app, codename in granted if name == group}
        assert user.get_group_permissions() == {f"{app}.{codename}" for app, codename in moved}
    editor = get_user_model().objects.get(username="note_editor")
    assert editor.has_perm("queue_messages.change_deadlettergroupnote")


def _new_workers_drain(filled):
    """The restarted workers take what is due: the received messages and the lease of a worker that died."""
    processing = Message.objects.filter(state=MessageState.PROCESSING)
    held = set(processing.filter(lease_expires_at__gt=datetime.now(UTC)).values_list("pk", flat=True))
    due = set(Message.objects.filter(state=MessageState.RECEIVED).values_list("pk", flat=True))
    due |= set(processing.exclude(pk__in=held).values_list("pk", flat=True))
    while batch := services.message_claim(worker="new-worker", limit=100):
        services.message_process_batch(messages=batch, worker="new-worker")
    by_new = MessageEvent.objects.filter(actor="new-worker", to_state=MessageState.PROCESSED)
    assert set(by_new.values_list("message_id", flat=True)) == due
    assert set(Message.objects.filter(pk__in=due, state=MessageState.PROCESSED).values_list("pk", flat=True)) == due
    assert set(Message.objects.filter(state=MessageState.PROCESSING).values_list("pk", flat=True)) == held


def _new_web_serves(filled):
    client = Client()
    client.force_login(get_user_model().objects.get(username="support"))
    pk = next(iter(filled.messages))
    response = client.get(f"/messages/{pk}/")
    assert response.status_code == 200
    assert filled.messages[pk]["message_id"] in response.content.decode()


def _rollback(targets, filled):
    """Back to the release's migrations (docs, "Rollback"): every migration since is reversible, no message goes."""
    fields = ("pk", "message_id", *STATE_COLUMNS)
    states = set(Message.objects.values_list(*fields))
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    assert MigrationRecorder(connection).applied_migrations().keys() == applied_by(targets)
    # Read through the release's own model: each message back with the state it had (0013 copies it back).
    old_message = model_named(executor.loader.project_state(targets).apps, "Message")
    assert set(old_message.objects.values_list(*fields)) == states
    assert {pk for pk, *_ in states} == set(filled.messages)

"""What the upgrade test (tests/test_upgrade.py) writes into a release's database, and how it reads every table back.

Written through the release's own historical models (the apps of its migration state), so the
rows are what that release's code could have stored: a model is looked up by its name in
whichever app holds it at that release (DeadLetterGroupNote and TerminalHealthSnapshot moved
app in issue 16), and a model the release did not have is left out.
"""

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.contrib.auth.hashers import make_password
from django.db import connection

from messages.models import MessageState
from terminals.services import api_key_hash

# Every timestamp is fixed, with microseconds, so "exact" means exact. The leases of the
# Processing messages are set from the real clock: one still held by a worker that kept running
# through the upgrade, one already expired.
T0 = datetime(2026, 11, 30, 8, 15, 30, 123457, tzinfo=UTC)
PASSWORD = "correct horse battery staple"  # noqa: S105 (a test user's)
PAYLOAD = json.dumps({"name": "Crème brûlée ü€𝄞", "price": "1.99", "tags": ["a", "b"], "n": {"deep": [1, 2.5]}})
# Per state, how many messages: every state, more than one of each, on two terminals.
PER_STATE = 3


def model_named(apps, name):
    """The model called ``name`` in whichever app holds it in ``apps``, or None (not in that release)."""
    found = [model for model in apps.get_models() if model.__name__ == name]
    assert len(found) <= 1, found
    return found[0] if found else None


@dataclass
class Filled:
    """What was written, to compare after the upgrade."""

    keys: dict[str, str] = field(default_factory=dict)  # terminal code -> its API key
    messages: dict[int, dict] = field(default_factory=dict)  # id -> the fields written
    events: dict[int, tuple] = field(default_factory=dict)  # id -> (message id, from, to, at, actor)
    future_reports: set[int] = field(default_factory=set)  # ids of reports dated beyond the clock skew
    kept_reports: set[int] = field(default_factory=set)
    group_perms: dict[str, set[tuple[str, str]]] = field(default_factory=dict)  # group -> {(app, codename)}
    note_id: int | None = None
    snapshot_terminal_code: str | None = None


def fill(apps, now: datetime) -> Filled:
    filled = Filled()
    terminals = _terminals(apps, filled)
    _messages(apps, terminals, now, filled)
    _dead_letters(apps, filled)
    _reconciliation(apps, terminals, filled)
    _the_rest(apps, terminals, filled)
    _users(apps, filled)
    return filled


def _terminals(apps, filled):
    Terminal = model_named(apps, "Terminal")
    terminals = []
    for code, enabled in [("T-UPG-1", True), ("T-UPG-2", True), ("T-UPG-OFF", False)]:
        key = f"key-of-{code}-{'x' * 32}"
        filled.keys[code] = key
        terminals.append(
            Terminal.objects.create(
                code=code, name=f"Till {code}", store="Store 1", enabled=enabled, api_key_hash=api_key_hash(key),
                key_rotated_at=T0, last_seen_at=T0, last_heartbeat_at=T0, app_version="3.2.1",
                reported_backlog=7, clock_skew_seconds=-0.25,
            )
        )  # fmt: skip
    return terminals


def _messages(apps, terminals, now, filled):
    Message = model_named(apps, "Message")
    MessageEvent = model_named(apps, "MessageEvent")
    n = 0
    for state in MessageState.values:
        for i in range(PER_STATE):
            n += 1
            at = T0 + timedelta(minutes=n, microseconds=n)
            fields = {
                "terminal_id": terminals[n % 2].pk,
                "message_id": f"m-{state}-{i}",
                "message_type": "product.upsert",
                "entity_type": "product",
                "entity_key": f"SKU-{n}",
                "sequence": n,
                "created_at": at - timedelta(seconds=3),
                "payload": PAYLOAD,
                "state": state,
                "attempts": 0 if state == MessageState.RECEIVED else 2,
                "next_attempt_at": at if state == MessageState.RECEIVED else None,
                "lease_owner": "",
                "lease_expires_at": None,
                "last_error": "",
                "received_at": at,
                "updated_at": at + timedelta(seconds=1),
                "processed_at": None,
                "trace_id": f"{n:032x}",
            }
            if state == MessageState.PROCESSING:
                # The first one's worker died before the upgrade; the others are held by live workers.
                lease_end = now - timedelta(minutes=5) if i == 0 else now + timedelta(hours=1)
                fields.update(lease_owner=f"old-worker-{i}", lease_expires_at=lease_end)
            elif state == MessageState.FAILED:
                fields.update(next_attempt_at=now + timedelta(days=1), last_error="ValueError: price 12 is negative")
            elif state == MessageState.PROCESSED:
                fields.update(processed_at=at + timedelta(seconds=1))
            elif state in (MessageState.DEAD_LETTERED, MessageState.DISCARDED):
                fields.update(last_error="PermanentError: unknown product type 'x'")
            message = Message.objects.create(**fields)
            filled.messages[message.pk] = fields
            moves = [("", "Received"), ("Received", "Processing")]
            if state not in (MessageState.RECEIVED, MessageState.PROCESSING):
                moves.append(("Processing", state))
            for step, (from_state, to_state) in enumerate(moves):
                event = MessageEvent.objects.create(
                    message_id=message.pk, from_state=from_state, to_state=to_state,
                    at=at + timedelta(milliseconds=step, microseconds=1), actor="worker-1" if step else "terminal:T",
                    reason="" if step < 2 else "because", attempt=step,
                )  # fmt: skip
                filled.events[event.pk] = (message.pk, from_state, to_state, event.at, event.actor)


def _dead_letters(apps, filled):
    DeadLetter = model_named(apps, "DeadLetter")
    Message = model_named(apps, "Message")
    resolutions = {MessageState.DEAD_LETTERED: ("", "", None), MessageState.DISCARDED: ("discarded", "user:sam", T0)}
    for message in Message.objects.filter(state__in=list(resolutions)).order_by("pk"):
        resolution, by, at = resolutions[message.state]
        DeadLetter.objects.create(
            message=message, reason="unknown product type 'x'", error_class="PermanentError",
            traceback="Traceback (most recent call last):\n  ...", group_key="PermanentError: unknown product type #",
            dead_lettered_at=message.updated_at, resolution=resolution, resolved_by=by, resolved_at=at, note="seen",
        )  # fmt: skip
    Note = model_named(apps, "DeadLetterGroupNote")
    note = Note.objects.create(
        grouping="reason", key="PermanentError: unknown product type #", note="ask HQ", updated_by="user:sam"
    )
    filled.note_id = note.pk


def _reconciliation(apps, terminals, filled):
    ReportedCount = model_named(apps, "ReportedCount")
    received = T0
    as_ofs = {"product": received - timedelta(hours=1), "price": received + timedelta(seconds=10)}
    future = {"stock": datetime(9999, 12, 31, tzinfo=UTC), "promo": received + timedelta(days=400)}
    for terminal in terminals[:2]:
        for entity, as_of in {**as_ofs, **future}.items():
            row = ReportedCount.objects.create(terminal=terminal, entity_type=entity, count=5, as_of=as_of)
            ReportedCount.objects.filter(pk=row.pk).update(received_at=received)  # auto_now_add otherwise
            (filled.future_reports if entity in future else filled.kept_reports).add(row.pk)
    Run = model_named(apps, "ReconciliationRun")
    Discrepancy = model_named(apps, "Discrepancy")
    for status in ("done", "failed", "queued"):
        run = Run.objects.create(
            created_at=T0, started_at=T0, finished_at=T0 + timedelta(seconds=2), duration_ms=2000.5,
            trigger="schedule", triggered_by="schedule", status=status, terminals_checked=2, cells_checked=4,
            gap_count=1, matrix={"T-UPG-1": {"product": "gap"}} if status == "done" else None,
        )  # fmt: skip
        Discrepancy.objects.create(
            run=run, terminal_code="T-UPG-1", entity_type="product", kind="gap", terminal_count=5, central_count=3,
            recount=3, in_flight=1, delta=2, reported_as_of=T0, reported_received_at=T0,
            explained_at=T0 if status == "done" else None, explained_by="user:sam", note="till was offline",
        )  # fmt: skip


def _the_rest(apps, terminals, filled):
    Snapshot = model_named(apps, "TerminalHealthSnapshot")
    Snapshot.objects.create(
        terminal=terminals[0], level="degraded", reasons=["no heartbeat for 10 min"], computed_at=T0
    )
    filled.snapshot_terminal_code = terminals[0].code
    BulkJob, BulkJobItem = model_named(apps, "BulkJob"), model_named(apps, "BulkJobItem")
    for state in ("Pending", "Running", "Done", "Cancelled", "Failed"):
        job = BulkJob.objects.create(
            action="retry", params={"filter": "state=Failed", "words": ["Failed"]}, state=state, total=3, done=1,
            changed=1, max_id=99, last_id=10, actor="user:sam", reason="after the fix", created_at=T0,
            started_at=T0 if state != "Pending" else None, heartbeat_at=T0,
        )  # fmt: skip
        BulkJobItem.objects.create(job=job, message_id=min(filled.messages))
    model_named(apps, "PurgeRun").objects.create(started_at=T0, finished_at=T0, duration_ms=1.5, messages_removed=4)
    model_named(apps, "CentralEntity").objects.create(
        entity_type="product", entity_key="SKU-0", terminal_code="T-UPG-1", data={"name": "ü"}, last_sequence=4,
        last_message_pk=min(filled.messages), updated_at=T0,
    )  # fmt: skip
    model_named(apps, "EntityCounter").objects.create(
        terminal_code="T-UPG-1", entity_type="product", live_count=1, updated_at=T0
    )
    model_named(apps, "OutboundUpdate").objects.create(
        terminal=terminals[0], update_id="u-1", update_type="resync", entity_key="product", created_at=T0
    )
    model_named(apps, "AuditEntry").objects.create(actor="user:sam", action="message.retry", detail={"n": 1})
    model_named(apps, "MetricSample").objects.create(at=T0, backlog=3, processed_last_minute=10)
    model_named(apps, "MetricCounter").objects.create(name="messages_total", labels='{"state":"Processed"}', value=5)
    Schedule = apps.get_model("django_q", "Schedule")
    # An operator's own schedule of a task that moved in 0.1.0, and one of a task that did not.
    Schedule.objects.create(name="night-purge", func="messages.tasks_scale.purge", schedule_type="D", repeats=-1)
    Schedule.objects.create(name="extra-sweep", func="messages.tasks.sweep", schedule_type="I", minutes=5, repeats=-1)


def _users(apps, filled):
    User, Group, Permission = (apps.get_model("auth", name) for name in ("User", "Group", "Permission"))
    for group in Group.objects.all():
        perms = group.permissions.values_list("content_type__app_label", "codename")
        filled.group_perms[group.name] = set(perms)
        user = User.objects.create(username=group.name.lower().replace(" ", "_"), password=make_password(PASSWORD))
        user.groups.add(group)
    # A permission given to one user directly, on a model that changed app (its content type moves).
    editor = User.objects.create(username="note_editor", password=make_password(PASSWORD))
    note_type = model_named(apps, "DeadLetterGroupNote")._meta
    editor.user_permissions.add(
        Permission.objects.get(content_type__app_label=note_type.app_label, codename="change_deadlettergroupnote")
    )


def tables_read() -> dict[str, list[tuple]]:
    """Every row of every table, as the database returns it (nothing in between to hide a change)."""
    with connection.cursor() as cursor:
        tables = {}
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608 (a table's own name)
            names = [column[0] for column in cursor.description]
            tables[table] = sorted((tuple(zip(names, row, strict=True)) for row in cursor.fetchall()), key=repr)
        return tables

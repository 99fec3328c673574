"""All test factories in one place (factory_boy)."""

import importlib
import json
from datetime import UTC, datetime

import factory
from django.apps import apps
from django.contrib.auth.models import Group

from messages.models import Message, MessageState
from terminals.models import Terminal


class TerminalFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Terminal
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"T{n:04d}")
    name = factory.LazyAttribute(lambda t: f"Till {t.code}")
    store = factory.Sequence(lambda n: f"Store {n % 7}")


class MessageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Message

    terminal = factory.SubFactory(TerminalFactory)
    message_id = factory.Sequence(lambda n: f"m-{n}")
    message_type = "product.upsert"
    entity_type = factory.LazyAttribute(lambda m: m.message_type.partition(".")[0])
    entity_key = factory.Sequence(lambda n: f"SKU-{n}")
    sequence = 1
    created_at = factory.LazyFunction(lambda: datetime.now(UTC))
    payload = factory.LazyAttribute(lambda m: json.dumps({"name": f"Item {m.entity_key}", "price": "1.99"}))
    state = MessageState.RECEIVED
    received_at = factory.LazyFunction(lambda: datetime.now(UTC))
    updated_at = factory.LazyFunction(lambda: datetime.now(UTC))
    next_attempt_at = factory.LazyFunction(lambda: datetime.now(UTC))


class ReportedCountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "reconciliation.ReportedCount"

    terminal = factory.SubFactory(TerminalFactory)
    entity_type = "product"
    count = 0
    as_of = factory.LazyFunction(lambda: datetime.now(UTC))


# --- console -------------------------------------------------------------------------------------


class UserFactory(factory.django.DjangoModelFactory):
    """A console user; ``group`` names one of the groups the console's data migration creates."""

    class Meta:
        model = "auth.User"
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.PostGenerationMethodCall("set_password", "correct horse battery staple")

    @factory.post_generation
    def group(self, create, extracted, **kwargs):
        if create and extracted:
            console_groups_ensure()
            self.groups.add(Group.objects.get(name=extracted))


# The data migrations that give the console its groups and permissions, in order.
ACCESS_MIGRATIONS = [
    ("syncadmin.migrations.0003_console_groups", "create_groups"),
    ("reconciliation.migrations.0003_group_permissions", "grant"),
    ("messages.migrations.0002_scale_bulkjob_purgerun", "add_permissions"),
    ("messages.migrations.0009_queue_pauses", "add_permissions"),
    ("messages.migrations.0010_group_triage", "add_permission"),
    ("messages.migrations.0011_saved_views", "grant"),
    ("reconciliation.migrations.0005_alerts", "seed"),  # the alerts' rights, and the default rules
]


def console_groups_ensure() -> None:
    """The console's groups with all their permissions, as the data migrations leave them.

    A transactional test ends with a flush that empties every table, the migrations' groups
    included, so whatever runs after one in the same session finds none; running the migrations'
    own functions again (they are idempotent) restores exactly what `migrate` makes.
    """
    for module, function in ACCESS_MIGRATIONS:
        getattr(importlib.import_module(module), function)(apps, None)


class DeadLetterFactory(factory.django.DjangoModelFactory):
    """A dead-lettered message with its DeadLetter row, as the workers leave it."""

    class Meta:
        model = "queue_messages.DeadLetter"

    message = factory.SubFactory(
        MessageFactory, state=MessageState.DEAD_LETTERED, attempts=5, last_error="ValueError: price 12 is negative"
    )
    reason = factory.LazyAttribute(lambda d: d.message.last_error)
    error_class = "ValueError"
    traceback = 'Traceback (most recent call last):\n  File "handlers.py", line 1\nValueError: price'
    group_key = factory.LazyAttribute(lambda d: f"{d.error_class}: price # is negative")
    dead_lettered_at = factory.LazyFunction(lambda: datetime.now(UTC))


class MetricSampleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "syncadmin.MetricSample"

    at = factory.LazyFunction(lambda: datetime.now(UTC))
    backlog = 10
    oldest_backlog_seconds = 30.0
    processed_last_minute = 100
    failed_last_minute = 1
    dead_lettered_total = 0


# --- scale: bulk jobs, retention ---------------------------------------------------------------------


class BulkJobFactory(factory.django.DjangoModelFactory):
    """A background bulk job as the console creates it (Pending, not yet counted)."""

    class Meta:
        model = "queue_messages.BulkJob"

    action = "retry"
    params = factory.LazyFunction(lambda: {"scope": "filter", "query": "state=DeadLettered", "filters": {}})
    actor = "user:support"
    created_at = factory.LazyFunction(lambda: datetime.now(UTC))


class QueuePauseFactory(factory.django.DjangoModelFactory):
    """An active pause, as the console sets it."""

    class Meta:
        model = "queue_messages.QueuePause"

    scope = "message_type"
    value = "price.upsert"
    reason = "handler bug"
    paused_by = "user:support"
    paused_at = factory.LazyFunction(lambda: datetime.now(UTC))


class PurgeRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "queue_messages.PurgeRun"

    started_at = factory.LazyFunction(lambda: datetime.now(UTC))
    finished_at = factory.LazyFunction(lambda: datetime.now(UTC))
    duration_ms = 1234.0
    messages_removed = 4000
    events_removed = 12000
    deadletters_removed = 3
    batches = 2


class SavedViewFactory(factory.django.DjangoModelFactory):
    """A saved view of the message list, as the save-view form leaves it."""

    class Meta:
        model = "queue_messages.SavedView"

    name = factory.Sequence(lambda n: f"view {n}")
    owner = factory.SubFactory(UserFactory)
    shared = False
    query = "state=DeadLettered"
    created_at = factory.LazyFunction(lambda: datetime.now(UTC))


class AlertRuleFactory(factory.django.DjangoModelFactory):
    """The alert rule of ``kind`` (seeded by migration reconciliation 0005), with the fields given set."""

    class Meta:
        model = "reconciliation.AlertRule"

    kind = "backlog_overdue"

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        rule, _ = model_class.objects.get_or_create(kind=kwargs.pop("kind"), defaults={"threshold": 0})
        for field, value in kwargs.items():  # only what the test gave: a seeded rule keeps the rest
            setattr(rule, field, value)
        rule.save()
        return rule


class IncidentFactory(factory.django.DjangoModelFactory):
    """An open incident of the backlog rule, as alerts_evaluate leaves one."""

    class Meta:
        model = "reconciliation.Incident"

    rule = factory.SubFactory(AlertRuleFactory)
    state = "open"
    first_seen_at = factory.LazyFunction(lambda: datetime.now(UTC))
    opened_at = factory.LazyAttribute(lambda i: i.first_seen_at)
    updated_at = factory.LazyAttribute(lambda i: i.first_seen_at)
    value = 30.0
    threshold = 10.0


class AlertNotificationFactory(factory.django.DjangoModelFactory):
    """A webhook notification of an incident's opening that used up its attempts (failed)."""

    class Meta:
        model = "reconciliation.AlertNotification"

    incident = factory.SubFactory(IncidentFactory)
    event = "opened"
    channel = "webhook"
    target = "http://127.0.0.1:9/hook"
    state = "failed"
    attempts = 1
    last_error = "ConnectionError: refused"
    next_attempt_at = factory.LazyFunction(lambda: datetime.now(UTC))
    created_at = factory.LazyFunction(lambda: datetime.now(UTC))

"""All test factories in one place (factory_boy)."""

import json
from datetime import UTC, datetime

import factory

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

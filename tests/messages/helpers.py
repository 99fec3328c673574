"""Drive the real engine from tests: envelopes, draining, due times, the live counters."""

import json
from datetime import UTC, datetime, timedelta

from messages import services
from messages.models import EntityCounter, Message, MessageState
from messages.services import Envelope

S = MessageState


def env(mid, key="SKU-1", seq=1, mtype="product.upsert", payload=None):
    return Envelope(
        message_id=mid,
        message_type=mtype,
        entity_key=key,
        sequence=seq,
        created_at=datetime.now(UTC),
        payload=json.dumps(payload if payload is not None else {"name": key, "seq": seq}),
    )


def drain_all(worker="w1", limit=100):
    total = []
    while batch := services.message_claim(worker=worker, limit=limit):
        total.append(services.message_process_batch(messages=batch, worker=worker))
    return total


def make_due(*messages):
    Message.objects.filter(pk__in=[m.pk for m in messages]).update(next_attempt_at=datetime.now(UTC) - timedelta(1))


def counter(terminal, entity="product"):
    row = EntityCounter.objects.filter(terminal_code=terminal.code, entity_type=entity).first()
    return row.live_count if row else 0

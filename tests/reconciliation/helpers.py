"""Drive the real engine from reconciliation tests (same moves as tests/messages/helpers.py)."""

import json
from datetime import UTC, datetime

from messages import services
from messages.services import Envelope


def env(mid, key, seq=1, op="upsert", entity="product", created_at=None, payload=None):
    return Envelope(
        message_id=mid,
        message_type=f"{entity}.{op}",
        entity_key=key,
        sequence=seq,
        created_at=created_at or datetime.now(UTC),
        payload=json.dumps(payload if payload is not None else ({} if op == "delete" else {"k": key, "seq": seq})),
    )


def ingest(terminal, *envelopes):
    return services.message_ingest_batch(terminal=terminal, envelopes=list(envelopes))


def drain_all(worker="w1", limit=100):
    total = []
    while batch := services.message_claim(worker=worker, limit=limit):
        total.append(services.message_process_batch(messages=batch, worker=worker))
    return total

"""messages/central_store.py: the central store's writes and counters."""

import pytest

from messages import services
from messages.models import CentralEntity, MessageState
from tests.factories import TerminalFactory
from tests.messages.helpers import drain_all, env

S = MessageState
pytestmark = pytest.mark.django_db


def test_new_central_rows_are_written_in_one_global_order_whatever_the_sequences(terminal, monkeypatch):
    """Regression (found by bench/engine.py on PostgreSQL): two batches holding the same key from
    two terminals, with sequences that sort them in opposite orders, inserted the new rows in
    opposite orders and deadlocked on the unique index. Every batch now writes in key order."""
    from messages import handlers

    other = TerminalFactory(code="T-2")
    written = []
    real = handlers.central_write

    def spy(*, new, **kwargs):
        written.append([(r.entity_type, r.entity_key, r.terminal_code) for r in new])
        return real(new=new, **kwargs)

    monkeypatch.setattr(handlers, "central_write", spy)
    # batch 1: T-2's K1 has the lower sequence; batch 2: terminal's K1 has the lower one
    services.message_ingest_batch(terminal=other, envelopes=[env("a", "K1", seq=1), env("b", "K2", seq=9)])
    services.message_ingest_batch(terminal=terminal, envelopes=[env("c", "K1", seq=5), env("d", "K0", seq=2)])
    drain_all()
    services.message_ingest_batch(terminal=terminal, envelopes=[env("e", "K3", seq=1)])
    services.message_ingest_batch(terminal=other, envelopes=[env("f", "K3", seq=7)])
    drain_all()
    new_rows = [rows for rows in written if rows]
    assert new_rows and all(rows == sorted(rows) for rows in new_rows), written
    assert CentralEntity.objects.count() == 6

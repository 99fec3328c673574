"""syncadmin/lib/rows.py: an instance from a row is the one Model.from_db makes, at a fraction of its cost."""

import pytest
from django.db.models import signals

from messages import services
from messages.models import Message
from syncadmin.lib.rows import loaded, loader
from terminals.models import Terminal
from tests.messages.helpers import env

pytestmark = pytest.mark.django_db


def test_an_instance_from_a_row_is_the_one_from_db_makes(terminal):
    services.message_ingest_batch(terminal=terminal, envelopes=[env("r-1", "K")])
    row = Message.objects.values("id", "terminal_id", "message_id", "state", "payload").get()
    # What a queryset of Message loads besides: its own primary key, the link to the envelope (the
    # claim's row carries the envelope's id only, and loaded() sets the link from it).
    full = {**row, "envelope_id": row["id"]}
    fields = [f.attname for f in Message._meta.concrete_fields if f.attname in full]
    orm = Message.from_db("default", fields, [full[f] for f in fields])
    fast = loaded(Message, "default", dict(row))
    assert (fast.pk, fast.message_id, fast.state, fast.payload) == (orm.pk, orm.message_id, orm.state, orm.payload)
    assert fast.get_deferred_fields() == orm.get_deferred_fields() and "received_at" in fast.get_deferred_fields()
    assert (fast._state.adding, fast._state.db) == (orm._state.adding, orm._state.db) == (False, "default")
    assert fast.received_at == Message.objects.get().received_at  # a deferred column loads on access
    assert fast.terminal == terminal and fast == orm


def test_a_model_with_init_receivers_is_refused():
    def receiver(**kwargs):
        pass

    signals.post_init.connect(receiver, sender=Terminal)
    try:
        with pytest.raises(TypeError, match="init signal receivers"):
            loaded(Terminal, "default", {"id": 1, "code": "T"})
        with pytest.raises(TypeError, match="init signal receivers"):
            loader(Terminal, "default")
    finally:
        signals.post_init.disconnect(receiver, sender=Terminal)
    assert loaded(Terminal, "default", {"id": 1, "code": "T"}).code == "T"


def test_a_loader_makes_one_instance_per_row_each_with_its_own_state():
    make = loader(Message, "default")
    first, second = make({"id": 1, "message_id": "a"}), make({"id": 2, "message_id": "b"})
    assert (first.pk, first.envelope_id, first.message_id) == (1, 1, "a")
    assert (second.pk, second.envelope_id, second.message_id) == (2, 2, "b")
    assert first._state is not second._state and not first._state.adding

"""Model instances from raw rows, without Model.__init__: for the engine's claim, per message.

``Model.from_db`` builds an instance through ``Model.__init__``, which walks every field and
sends the pre_init and post_init signals: 29 µs per claimed message against 4 µs (measured,
the Message model with the claim's columns), the claim's largest Python cost after its round
trip (bench/profile_engine.py). ``loaded`` makes the same instance ``from_db`` makes from the
loaded columns: their values set, the columns not loaded deferred (they load on access, as
after ``only()``), the instance marked as read from ``db``. It sends no signal, so it refuses a
model that has pre_init or post_init receivers (an ImageField, a GenericForeignKey...).
``loader`` makes those checks once for a batch of rows of one model.
"""

from __future__ import annotations

from collections.abc import Callable

from django.db.models import Model, signals
from django.db.models.base import ModelState


def loaded(model: type[Model], db: str, values: dict):
    """An instance of ``model`` as read from ``db``: ``values`` maps attnames to their loaded values."""
    return loader(model, db)(values)


def loader(model: type[Model], db: str) -> Callable[[dict], Model]:
    """``loaded`` for many rows of one model: the model's checks made once, then one call per row
    (the claim makes a batch's instances with it)."""
    if signals.pre_init.has_listeners(model) or signals.post_init.has_listeners(model):
        raise TypeError(f"{model.__name__} has init signal receivers: use Model.from_db")
    # Multi-table inheritance: the child's primary key is its link to the parent, the same value
    # as the parent's id, which is the column the row carries.
    links = [(link.attname, parent._meta.pk.attname) for parent, link in model._meta.parents.items() if link]
    new = model.__new__

    def make(values: dict) -> Model:
        for attname, parent_pk in links:
            if attname not in values and parent_pk in values:
                values = {**values, attname: values[parent_pk]}
        instance = new(model)
        state = instance._state = ModelState()
        state.adding, state.db = False, db
        instance.__dict__.update(values)
        return instance

    return make

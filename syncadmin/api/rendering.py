"""JSON out: every timestamp exact, to the microsecond.

ninja's encoder is Django's, which cuts a datetime to milliseconds (ECMA-262's format): a client
that read a message's ``received_at`` back, or compared two events, would see times the hub never
stored. The hub's promise is every timestamp exact, so the API writes ``isoformat()`` in full.
"""

from __future__ import annotations

from datetime import datetime, time

from ninja.renderers import JSONRenderer
from ninja.responses import NinjaJSONEncoder


class ExactJSONEncoder(NinjaJSONEncoder):
    def default(self, o):
        if isinstance(o, datetime | time):
            return o.isoformat()
        return super().default(o)


class ExactJSONRenderer(JSONRenderer):
    encoder_class = ExactJSONEncoder

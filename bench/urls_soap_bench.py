"""URLs for bench/soap.py: the production URLs plus a plain JSON ingest view for comparison."""

import json

from django.http import JsonResponse
from django.urls import path
from django.utils.dateparse import parse_datetime
from django.views.decorators.csrf import csrf_exempt

from messages.services import Envelope, message_ingest_batch
from syncadmin.urls import urlpatterns as production
from terminals.services import terminal_authenticate


@csrf_exempt
def json_ingest(request):
    """The same work as SubmitMessages (auth + one-transaction batch ingest), with JSON framing."""
    terminal = terminal_authenticate(code=request.headers.get("X-Terminal"), key=request.headers.get("X-Key"))
    if terminal is None or not terminal.enabled:
        return JsonResponse({"error": "authentication failed"}, status=401)
    envelopes = [
        Envelope(
            message_id=m.get("MessageId"),
            message_type=m.get("MessageType"),
            entity_key=m.get("EntityKey"),
            sequence=m.get("Sequence"),
            created_at=parse_datetime(m["CreatedAt"]) if m.get("CreatedAt") else None,
            payload=m.get("Payload"),
        )
        for m in json.loads(request.body)
    ]
    results = message_ingest_batch(terminal=terminal, envelopes=envelopes)
    return JsonResponse(
        [{"MessageId": r.message_id, "Status": r.status, "Reason": r.reason} for r in results], safe=False
    )


urlpatterns = [*production, path("bench/json-ingest/", json_ingest)]

"""``Idempotency-Key`` on state-changing POSTs: a retried call gets the first answer and changes nothing twice.

The key is claimed, the change made and its answer stored in one transaction
(``syncadmin.services.idempotency_claim``): a concurrent retry waits for it and gets the answer; a
failed call (an error is raised) stores nothing, so its retry runs again. A terminal key in the answer
is not kept (``SECRET_FIELDS``): its replay shows it empty. The same key with another
request (method, path or body differ) answers 422; while the first call still runs, 409.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from functools import wraps

from django.conf import settings
from django.db import transaction
from django.http import HttpResponse
from ninja.responses import Status
from pydantic import BaseModel

from syncadmin.api.problems import ProblemError
from syncadmin.api.rendering import ExactJSONEncoder
from syncadmin.services import IdempotencyConflict, idempotency_claim, idempotency_store

HEADER = "Idempotency-Key"
KEY_MAX = 255
# Fields never stored in a record: a terminal's key exists in clear only in the first answer (it is
# stored hashed, as everywhere). A replay answers them empty: a caller that lost the first answer
# rotates the key.
SECRET_FIELDS = frozenset({"api_key"})


def fingerprint(request) -> str:
    digest = hashlib.sha256()
    for part in (request.method.encode(), request.path.encode(), request.body):
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()


def _render(result) -> tuple[int, str]:
    """(status, JSON text) of what an endpoint returned: a schema, or Status(status, schema)."""
    status, data = (result.status_code, result.value) if isinstance(result, Status) else (200, result)
    if isinstance(data, BaseModel):
        data = data.model_dump(mode="json")
    return status, json.dumps(data, cls=ExactJSONEncoder)


def _without_secrets(data):
    if isinstance(data, dict):
        return {k: "" if k in SECRET_FIELDS else _without_secrets(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_without_secrets(v) for v in data]
    return data


def idempotent(endpoint):
    """Wrap a state-changing endpoint (it returns a schema or Status(status, schema), and raises on errors)."""

    @wraps(endpoint)
    def wrapper(request, *args, **kwargs):
        key = request.headers.get(HEADER)
        if key is None:
            return endpoint(request, *args, **kwargs)
        if not 1 <= len(key) <= KEY_MAX or not key.isascii() or not key.isprintable():
            raise ProblemError(
                400,
                "the Idempotency-Key must be 1 to 255 printable ASCII characters",
                errors=[("header.Idempotency-Key", "not valid")],
            )
        ttl = timedelta(hours=settings.SYNC_API_IDEMPOTENCY_HOURS)
        with transaction.atomic():
            try:
                record = idempotency_claim(user=request.user, key=key, fingerprint=fingerprint(request), ttl=ttl)
            except IdempotencyConflict as exc:
                raise ProblemError(422 if exc.mismatch else 409, str(exc), kind="idempotency") from exc
            if record is not None:
                response = HttpResponse(record.body, status=record.status, content_type="application/json")
                response["Idempotent-Replayed"] = "true"
                return response
            status, body = _render(endpoint(request, *args, **kwargs))
            kept = json.dumps(_without_secrets(json.loads(body)))
            idempotency_store(user=request.user, key=key, status=status, body=kept)
        return HttpResponse(body, status=status, content_type="application/json")

    return wrapper

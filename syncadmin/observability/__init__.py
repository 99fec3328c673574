"""Observability: /metrics, /healthz, structured logs, tracing, the terminal health score.

Entry points for other layers (imported lazily: this package is loaded by the logging
configuration before the apps are ready, so it must not import models at import time):

- ``soap_request_observed(operation, fault_code, seconds)``: count one answered SOAP call.
- ``soap_request(operation, headers=request.META)``: context manager for a SOAP call that
  times it, counts it, opens its span and sets the log context; yields a ``SoapCall`` whose
  ``trace_id`` goes to ``message_ingest_batch(trace_id=...)``.
- ``log_context(trace_id=..., terminal=..., message_id=...)``: fields for every log line.
"""

from syncadmin.observability.logs import log_context
from syncadmin.observability.soap import SoapCall, soap_request, soap_request_observed

__all__ = ["SoapCall", "log_context", "soap_request", "soap_request_observed"]

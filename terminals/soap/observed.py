"""Every SOAP call observed: timed and counted (by operation and fault code), traced, and logged in its context.

- ``soap_request(operation, headers=request.META)``: context manager for a SOAP call that times
  it, counts it, opens its span and sets the log context; yields a ``SoapCall`` whose
  ``trace_id`` goes to ``message_ingest_batch(trace_id=...)``.
- ``soap_request_observed(operation, fault_code, seconds)``: count one answered SOAP call
  (the view counts the requests refused before any operation ran).

The counts are this process's (syncadmin/lib/process_metrics.py): /metrics shows them.
"""

from __future__ import annotations

import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

from opentelemetry.trace import Status, StatusCode
from prometheus_client import Counter, Histogram

from syncadmin.lib import tracing
from syncadmin.lib.logs import log_context
from syncadmin.lib.process_metrics import PROCESS_REGISTRY
from terminals.soap.contract import CONTRACT_FAULTS, OPERATIONS

# request.META key of a list the SOAP operation appends its name to: the view counts a call itself
# only when no operation ran (refused before: size, DOCTYPE, malformed XML). A list, not a flag:
# spyne's DjangoApplication runs the call on a copy of request.META, which shares its values.
OBSERVED_MARK = "syncadmin.soap_observed"

SOAP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
SOAP_REQUESTS = Counter(
    "syncadmin_soap_requests",
    "SOAP requests answered, by operation and fault code (none = success).",
    ["operation", "fault_code"],
    registry=PROCESS_REGISTRY,
)
SOAP_SECONDS = Histogram(
    "syncadmin_soap_request_seconds",
    "Time to answer a SOAP request, by operation.",
    ["operation"],
    buckets=SOAP_BUCKETS,
    registry=PROCESS_REGISTRY,
)


def soap_request_observed(operation: str, fault_code: str | None, seconds: float) -> None:
    """Count one answered SOAP request (fault_code None = success) and its duration.

    Operations and fault codes outside the contract are counted as 'other' (bounds the labels).
    """
    op = operation if operation in OPERATIONS else "other"
    fault = "none" if not fault_code else (fault_code if fault_code in CONTRACT_FAULTS else "other")
    SOAP_REQUESTS.labels(operation=op, fault_code=fault).inc()
    SOAP_SECONDS.labels(operation=op).observe(max(seconds, 0.0))


@dataclass
class SoapCall:
    operation: str
    trace_id: str
    fault_code: str | None = None
    span: object = None
    _log: dict = field(default_factory=dict, repr=False)

    def set_terminal(self, code: str) -> None:
        """Once the caller is authenticated: its code goes on the log lines and the span."""
        self._log["terminal"] = code
        if self.span is not None:
            self.span.set_attribute("syncadmin.terminal", code)

    def set_fault(self, fault_code: str) -> None:
        self.fault_code = fault_code


@contextmanager
def soap_request(operation: str, *, headers=None, terminal_code: str = ""):
    """Wrap one SOAP call: ``with soap_request("SubmitMessages", headers=request.META) as call:``.

    ``call.trace_id`` is the trace id to store on the messages this call ingests (from an
    incoming W3C traceparent header, else new). Call ``call.set_fault(code)`` before raising
    a SOAP fault, or raise a spyne Fault (its faultcode is used); any other exception that
    escapes counts as Server.Unavailable.
    """
    trace_id = tracing.incoming_trace_id(headers) or tracing.new_trace_id()
    call = SoapCall(operation=operation, trace_id=trace_id)
    started = time.perf_counter()
    with ExitStack() as stack:
        call._log = stack.enter_context(log_context(trace_id=trace_id, terminal=terminal_code))
        call.span = stack.enter_context(tracing.soap_span(operation, trace_id=trace_id, terminal_code=terminal_code))
        try:
            yield call
        except BaseException as exc:
            # spyne's Fault carries its SOAP faultcode (e.g. Client.AuthenticationFailed).
            call.fault_code = call.fault_code or getattr(exc, "faultcode", None) or "Server.Unavailable"
            raise
        finally:
            if call.span is not None and call.fault_code:
                call.span.set_attribute("rpc.soap.fault_code", call.fault_code)
                call.span.set_status(Status(StatusCode.ERROR, call.fault_code))
            soap_request_observed(operation, call.fault_code, time.perf_counter() - started)

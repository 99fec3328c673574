"""Hooks for the SOAP layer (terminals/soap/): timing, counting, tracing, log context."""

from __future__ import annotations

import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

from syncadmin.observability import tracing
from syncadmin.observability.logs import log_context


def soap_request_observed(operation: str, fault_code: str | None, seconds: float) -> None:
    """Count one answered SOAP request (fault_code None = success) and its duration."""
    from syncadmin.observability.metrics import soap_request_observed as observe

    observe(operation, fault_code, seconds)


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
                from opentelemetry.trace import Status, StatusCode

                call.span.set_attribute("rpc.soap.fault_code", call.fault_code)
                call.span.set_status(Status(StatusCode.ERROR, call.fault_code))
            soap_request_observed(operation, call.fault_code, time.perf_counter() - started)

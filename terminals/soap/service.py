"""The operations, and the application that authenticates once per request and observes each call."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.utils import timezone
from spyne import Application, Array, Fault, Integer32, ServiceBase, Unicode, const, rpc
from spyne.server.django import DjangoApplication

from messages import outbound, selectors
from messages.services import Envelope, message_ingest_batch
from reconciliation.reports import CountReport, InvalidCountReport, reported_counts_store
from syncadmin.lib.client_address import client_ip_from_meta
from terminals import services as terminal_services
from terminals.soap.contract import (
    AUTH_FAILED,
    BATCH_TOO_LARGE,
    INVALID_REQUEST,
    MAX_UPDATES,
    NS,
    TERMINAL_DISABLED,
    UNAVAILABLE,
)
from terminals.soap.guard import GuardedSoap11, clip_spyne_logs
from terminals.soap.observed import OBSERVED_MARK, soap_request
from terminals.soap.types import (
    AckResult,
    EntityCount,
    HeartbeatInfo,
    HeartbeatReply,
    MessageStatus,
    ReportReply,
    Security,
    SubmitResult,
    SyncMessage,
    Update,
)
from terminals.soap.wssecurity import security_header_freshness, security_header_read

log = logging.getLogger("terminals.soap")


# --- authentication -------------------------------------------------------------------------------


def _client_address(ctx) -> str:
    """The terminal's address as the console and /metrics see it (X-Forwarded-For from a trusted proxy)."""
    return client_ip_from_meta(getattr(ctx.transport, "req_env", None) or {}) or "?"


def _authenticate(ctx):
    header = security_header_read(ctx.in_header_doc)
    code, key = header.username, header.password
    terminal = terminal_services.terminal_authenticate(code=code, key=key) if code and key else None
    if terminal is None:
        # Never the password; the code is clipped and repr'd so a hostile one cannot forge log lines.
        log.warning(
            "terminal authentication failed: code=%r client=%s operation=%s",
            (code or "")[:64],
            _client_address(ctx),
            ctx.method_request_string,
        )
        raise Fault(AUTH_FAILED, "authentication failed")
    if not terminal.enabled:
        log.warning("disabled terminal refused: code=%s client=%s", terminal.code, _client_address(ctx))
        raise Fault(TERMINAL_DISABLED, "this terminal is disabled; contact support")
    # The replay defence, once the key is known good (so its reasons tell a stranger nothing).
    freshness = security_header_freshness(header, now=timezone.now())
    if freshness.malformed:
        raise Fault(INVALID_REQUEST, freshness.problem)
    problem = freshness.problem
    if problem is None and header.nonce is not None:
        if not terminal_services.terminal_nonce_use(
            terminal=terminal, nonce=header.nonce, keep_until=freshness.keep_nonce_until
        ):
            problem = "this wsse:Nonce was already used within the last 5 minutes"
    if problem is not None:
        log.warning(
            "replayed or stale WS-Security header refused: code=%s client=%s: %s",
            terminal.code,
            _client_address(ctx),
            problem,
        )
        raise Fault(AUTH_FAILED, f"authentication failed: {problem}")
    terminal_services.terminal_mark_seen(terminal=terminal)
    return terminal


class RequestContext:
    def __init__(self, terminal, trace_id: str):
        self.terminal = terminal
        self.trace_id = trace_id


class TerminalApplication(Application):
    def call_wrapper(self, ctx):
        """Authenticate once, run the operation, and turn infrastructure errors into faults.

        The whole call is observed (metrics by operation and fault code, a span, the log
        context): its trace id is stored on every message the call ingests.
        """
        operation = ctx.descriptor.name if ctx.descriptor else "unknown"
        env = getattr(ctx.transport, "req_env", None)
        if env is None:
            env = {}
        if isinstance(env.get(OBSERVED_MARK), list):
            env[OBSERVED_MARK].append(operation)  # the view counts the calls that never got this far
        with soap_request(operation, headers=env) as call:
            try:
                terminal = _authenticate(ctx)
                call.set_terminal(terminal.code)
                ctx.udc = RequestContext(terminal, call.trace_id)
                return super().call_wrapper(ctx)
            except Fault:
                raise
            except (OperationalError, InterfaceError) as exc:
                log.warning("database unavailable during %s [%s]: %s", operation, call.trace_id, exc)
                raise Fault(UNAVAILABLE, "the hub's database is unavailable; nothing was stored, retry later") from exc
            except Exception as exc:
                log.exception("unexpected error in %s [%s]", operation, call.trace_id)
                raise Fault("Server", f"internal error (reference {call.trace_id})") from exc


# --- the service ----------------------------------------------------------------------------------


def _bounded(items, what: str) -> list:
    items = list(items or [])
    if len(items) > settings.SYNC_MAX_BATCH:
        raise Fault(BATCH_TOO_LARGE, f"{len(items)} {what} in one call; at most {settings.SYNC_MAX_BATCH}")
    return items


# (Dates arrive aware, in UTC: GuardedSoap11 reads them with xsd.py. A comment, not a docstring:
# spyne would publish a docstring in the WSDL.)
class TerminalSyncService(ServiceBase):
    __in_header__ = Security

    @rpc(Array(SyncMessage), _returns=Array(SubmitResult))
    def SubmitMessages(ctx, messages):
        envelopes = [
            Envelope(
                message_id=m.MessageId,
                message_type=m.MessageType,
                entity_key=m.EntityKey,
                sequence=m.Sequence,
                created_at=m.CreatedAt,
                payload=m.Payload,
            )
            if m is not None
            else Envelope(None, None, None, None, None, None)
            for m in _bounded(messages, "messages")
        ]
        # The per-message results (Accepted/Duplicate/Rejected, in input order) go out as they
        # are: GuardedSoap11 writes them as the SubmitResult array the WSDL declares.
        return message_ingest_batch(terminal=ctx.udc.terminal, envelopes=envelopes, trace_id=ctx.udc.trace_id)

    @rpc(Array(Unicode), _returns=Array(MessageStatus))
    def GetMessageStatus(ctx, messageIds):
        ids = _bounded(messageIds, "message ids")
        found = selectors.message_statuses(terminal=ctx.udc.terminal, message_ids=ids)
        out = []
        for message_id in ids:
            m = found.get(message_id)
            if m is None:
                out.append(MessageStatus(MessageId=message_id, State="Unknown", Attempts=0))
            else:
                out.append(
                    MessageStatus(
                        MessageId=message_id,
                        State=m.state,
                        Attempts=m.attempts,
                        LastError=m.last_error or None,
                        UpdatedAt=m.updated_at,
                    )
                )
        return out

    @rpc(Integer32, _returns=Array(Update))
    def FetchUpdates(ctx, maxCount):
        if maxCount is None or not 1 <= maxCount <= MAX_UPDATES:
            raise Fault(INVALID_REQUEST, f"maxCount must be between 1 and {MAX_UPDATES}")
        updates = outbound.update_fetch(terminal=ctx.udc.terminal, max_count=maxCount)
        return [
            Update(
                UpdateId=u.update_id,
                UpdateType=u.update_type,
                EntityKey=u.entity_key,
                Payload=u.payload,
                CreatedAt=u.created_at,
            )
            for u in updates
        ]

    @rpc(Array(Unicode), _returns=AckResult)
    def AckUpdates(ctx, updateIds):
        ids = [i for i in _bounded(updateIds, "update ids") if i]
        return AckResult(Acknowledged=outbound.update_ack(terminal=ctx.udc.terminal, update_ids=ids) if ids else 0)

    @rpc(HeartbeatInfo, _returns=HeartbeatReply)
    def Heartbeat(ctx, info):
        info = info or HeartbeatInfo()
        terminal = ctx.udc.terminal
        try:
            server_time = terminal_services.terminal_heartbeat(
                terminal=terminal,
                app_version=info.AppVersion,
                local_backlog=info.LocalBacklog,
                terminal_time=info.TerminalTime,
            )
        except terminal_services.InvalidHeartbeat as exc:
            # Its heartbeats are refused until its clock is set: say so where support will look.
            log.warning("heartbeat refused: terminal=%s: %s", terminal.code, exc)
            raise Fault(INVALID_REQUEST, str(exc)) from None
        return HeartbeatReply(ServerTime=server_time, PendingUpdates=outbound.update_pending_count(terminal=terminal))

    @rpc(Array(EntityCount), _returns=ReportReply)
    def ReportCounts(ctx, counts):
        reports = [
            CountReport(entity_type=c.EntityType, count=c.Count, as_of=c.AsOf)
            if c is not None
            else CountReport(None, None, None)
            for c in _bounded(counts, "counts")
        ]
        try:
            received = reported_counts_store(terminal=ctx.udc.terminal, counts=reports)
        except InvalidCountReport as exc:
            raise Fault(INVALID_REQUEST, str(exc)) from None
        return ReportReply(Received=received)


application = TerminalApplication(
    [TerminalSyncService],
    tns=NS,
    name="TerminalSyncService",
    # Soft validation: wrong types, malformed dates and numbers out of range are refused
    # before the operation runs. Lengths are deliberately not in the schema: an oversized
    # MessageId rejects that one message (the contract's "Rejected"), not the whole batch.
    in_protocol=GuardedSoap11(validator="soft"),
    out_protocol=GuardedSoap11(),
)

# The view below checks the body size itself (with its own fault), so spyne's own limit is
# only a backstop; big blocks avoid joining thousands of 8 KB chunks.
server = DjangoApplication(application, max_content_length=2**62, block_length=1024 * 1024)
clip_spyne_logs()
# spyne runs a full gc.collect() when a request ends, at most once a second, to close
# uploaded files promptly. We take no file uploads, and in a loaded Django process a full
# collection costs tens of milliseconds of CPU every second: leave it to Python's own GC.
const.MIN_GC_INTERVAL = float("inf")

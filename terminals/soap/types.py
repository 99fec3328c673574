"""The contract's types (shared/terminal-api.md): names and namespace are the contract."""

from __future__ import annotations

from spyne import ComplexModel, DateTime, Integer32, Integer64, Unicode

from terminals.soap.contract import NS, WSSE_NS

# --- types -----------------------------------------------------------------------------------------


class _Type(ComplexModel):
    __namespace__ = NS


class SyncMessage(_Type):
    _type_info = [
        ("MessageId", Unicode),
        ("MessageType", Unicode),
        ("EntityKey", Unicode),
        ("Sequence", Integer64),
        ("CreatedAt", DateTime),
        ("Payload", Unicode),
    ]


class SubmitResult(_Type):
    _type_info = [("MessageId", Unicode), ("Status", Unicode), ("Reason", Unicode)]


class MessageStatus(_Type):
    _type_info = [
        ("MessageId", Unicode),
        ("State", Unicode),
        ("Attempts", Integer32),
        ("LastError", Unicode),
        ("UpdatedAt", DateTime),
    ]


class Update(_Type):
    _type_info = [
        ("UpdateId", Unicode),
        ("UpdateType", Unicode),
        ("EntityKey", Unicode),
        ("Payload", Unicode),
        ("CreatedAt", DateTime),
    ]


class AckResult(_Type):
    _type_info = [("Acknowledged", Integer32)]


class HeartbeatInfo(_Type):
    _type_info = [("AppVersion", Unicode), ("LocalBacklog", Integer32), ("TerminalTime", DateTime)]


class HeartbeatReply(_Type):
    _type_info = [("ServerTime", DateTime), ("PendingUpdates", Integer32)]


class EntityCount(_Type):
    _type_info = [("EntityType", Unicode), ("Count", Integer64), ("AsOf", DateTime)]


class ReportReply(_Type):
    _type_info = [("Received", Integer32)]


# Every text-valued field of a request (the arrays' items are named "string").
SIMPLE_FIELDS = frozenset(
    [name for model in (SyncMessage, HeartbeatInfo, EntityCount) for name, _ in model._type_info.items()]
    + ["maxCount", "string"]
)


# The WS-Security header as the WSDL declares it. It is only a declaration for clients: the
# credentials are read from the raw header elements (see _credentials), so a WCF header with
# mustUnderstand, a Timestamp or a Password Type attribute is read the same way.
class UsernameToken(ComplexModel):
    __namespace__ = WSSE_NS
    _type_info = [("Username", Unicode), ("Password", Unicode)]


class Security(ComplexModel):
    __namespace__ = WSSE_NS
    _type_info = [("UsernameToken", UsernameToken)]

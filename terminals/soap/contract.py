"""The contract's names: namespaces and fault codes (shared/terminal-api.md)."""

NS = "urn:syncadmin:terminal:v1"
WSSE_NS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
PASSWORD_TEXT = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordText"
SOAP_ENV_NS = "http://schemas.xmlsoap.org/soap/envelope/"
MAX_UPDATES = 500

# Fault codes are the contract (see shared/terminal-api.md).
AUTH_FAILED = "Client.AuthenticationFailed"
TERMINAL_DISABLED = "Client.TerminalDisabled"
BATCH_TOO_LARGE = "Client.BatchTooLarge"
INVALID_REQUEST = "Client.InvalidRequest"
FORBIDDEN_XML = "Client.ForbiddenXml"
UNAVAILABLE = "Server.Unavailable"
CONTRACT_FAULTS = frozenset(
    {AUTH_FAILED, TERMINAL_DISABLED, BATCH_TOO_LARGE, INVALID_REQUEST, FORBIDDEN_XML, UNAVAILABLE}
)
# The operations of TerminalSyncService (terminals/soap/service.py).
OPERATIONS = frozenset(
    {"SubmitMessages", "GetMessageStatus", "FetchUpdates", "AckUpdates", "Heartbeat", "ReportCounts"}
)

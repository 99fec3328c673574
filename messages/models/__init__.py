"""The queue_messages app's tables, one module per concern; imported from here by the rest of the code."""

from messages.models.central import CentralEntity, EntityCounter, OutboundUpdate, UpdateState
from messages.models.failures import DeadLetter, DeadLetterGroupEvent, DeadLetterGroupNote, TriageStatus
from messages.models.jobs import BULK_RATE_MAX, BulkJob, BulkJobItem, BulkJobState, PurgeRun
from messages.models.queue import (
    ACTION_PERMS,
    ACTION_STATES,
    DISCARDABLE_STATES,
    ENTITY_RE,
    PARK_OFFSET,
    PAUSE_PERM,
    PENDING_STATES,
    RESTORABLE_STATES,
    RETRYABLE_STATES,
    TRANSITIONS,
    VIEW_PERM,
    Message,
    MessageEvent,
    MessageState,
    QueuePause,
)
from messages.models.saved_views import SAVED_VIEW_NAME_MAX, SAVED_VIEW_QUERY_MAX, SHARE_VIEW_PERM, SavedView

__all__ = [
    "ACTION_PERMS",
    "ACTION_STATES",
    "BULK_RATE_MAX",
    "DISCARDABLE_STATES",
    "ENTITY_RE",
    "PARK_OFFSET",
    "PAUSE_PERM",
    "PENDING_STATES",
    "RESTORABLE_STATES",
    "RETRYABLE_STATES",
    "SAVED_VIEW_NAME_MAX",
    "SAVED_VIEW_QUERY_MAX",
    "SHARE_VIEW_PERM",
    "TRANSITIONS",
    "VIEW_PERM",
    "BulkJob",
    "BulkJobItem",
    "BulkJobState",
    "CentralEntity",
    "DeadLetter",
    "DeadLetterGroupEvent",
    "DeadLetterGroupNote",
    "EntityCounter",
    "Message",
    "MessageEvent",
    "MessageState",
    "OutboundUpdate",
    "PurgeRun",
    "QueuePause",
    "SavedView",
    "TriageStatus",
    "UpdateState",
]

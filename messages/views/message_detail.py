"""One message's page: payload, lifecycle, retry outlook; retry, discard, edit and retry, restore."""

from __future__ import annotations

import json

from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from messages import selectors
from messages.forms import DiscardForm, EditPayloadForm, RestoreForm, RetryForm
from messages.models import ACTION_PERMS, ACTION_STATES, VIEW_PERM, DeadLetter, Message, MessageState
from messages.selectors.pauses import message_due
from messages.services.console import (
    ActionRefused,
    message_edit_and_retry,
    message_operator_discard,
    message_operator_restore,
    message_operator_retry,
)
from syncadmin.lib.console import actor_of, console_view, wants_fragment
from syncadmin.lib.jsontext import json_parse


def _pretty(payload: str) -> tuple[str, bool]:
    try:
        return json.dumps(json_parse(payload), indent=2, ensure_ascii=False, sort_keys=False), True
    except ValueError:  # not JSON (or nested deeper than the parser goes): shown as stored
        return payload, False


def _detail_context(request, message: Message, **extra) -> dict:
    events = selectors.message_lifecycle(message_id=message.pk)
    payload, payload_ok = _pretty(message.payload)
    dead_letter = DeadLetter.objects.filter(message=message).first()
    due_at, parked = message_due(next_attempt_at=message.next_attempt_at)
    return {
        "message": message,
        "due_at": due_at,
        "parked": parked,
        "events": events,
        "attempts": [e for e in events if e.error_class or e.traceback],
        "payload": payload,
        "payload_ok": payload_ok,
        "history": selectors.message_entity_history(message=message, limit=20),
        "dead_letter": dead_letter,
        "outlook": selectors.message_retry_outlook(message=message)
        if message.state in ACTION_STATES["retry"]
        else None,
        "retry_form": extra.pop("retry_form", None) or RetryForm(),
        "discard_form": extra.pop("discard_form", None) or DiscardForm(),
        "can_retry_state": message.state in ACTION_STATES["retry"],
        "can_discard_state": message.state in ACTION_STATES["discard"],
        "can_restore_state": message.state in ACTION_STATES["restore"],
        **extra,
    }


def _load(pk: int) -> Message:
    return get_object_or_404(Message.objects.select_related("terminal"), pk=pk)


# Pages and fragments that show a payload are never stored by a browser or a proxy (no-store):
# the detail, its in-place action answers, the edit page, the CSV export.
@never_cache
@require_GET
@console_view(VIEW_PERM)
def message_detail(request, pk: int):
    message = _load(pk)
    template = "messages/_detail_body.html" if wants_fragment(request) else "messages/message_detail.html"
    return render(request, template, _detail_context(request, message))


def _after_action(request, pk: int, status: int = 200, **extra):
    message = _load(pk)
    if request.htmx:
        return render(request, "messages/_detail_body.html", _detail_context(request, message, **extra), status=status)
    if status != 200:
        return render(
            request, "messages/message_detail.html", _detail_context(request, message, **extra), status=status
        )
    return redirect("message-detail", pk=pk)


@never_cache
@require_POST
@console_view(VIEW_PERM, ACTION_PERMS["retry"])
def message_retry_view(request, pk: int):
    message = _load(pk)
    form = RetryForm(request.POST)
    if not form.is_valid():
        return _after_action(request, pk, retry_form=form)
    changed = message_operator_retry(
        message_ids=[message.pk], actor=actor_of(request), reason=form.cleaned_data["reason"]
    )
    flash = "Retried: the message is queued again." if changed else f"Nothing changed: the message is {message.state}."
    return _after_action(request, pk, flash=flash, flash_level="ok" if changed else "warn")


@never_cache
@require_POST
@console_view(VIEW_PERM, ACTION_PERMS["discard"])
def message_discard_view(request, pk: int):
    message = _load(pk)
    form = DiscardForm(request.POST)
    if not form.is_valid():
        return _after_action(
            request, pk, discard_form=form, flash="A reason is required to discard.", flash_level="err"
        )
    changed = message_operator_discard(
        message_ids=[message.pk], actor=actor_of(request), reason=form.cleaned_data["reason"]
    )
    flash = "Discarded." if changed else f"Nothing changed: the message is {message.state}."
    return _after_action(request, pk, flash=flash, flash_level="ok" if changed else "warn")


@never_cache
@console_view(VIEW_PERM, "queue_messages.edit_payload")
def message_edit_view(request, pk: int):
    message = _load(pk)
    error = ""
    if request.method == "POST":
        form = EditPayloadForm(request.POST)
        if form.is_valid():
            try:
                message_edit_and_retry(
                    message_id=message.pk,
                    payload=form.cleaned_data["payload"],
                    actor=actor_of(request),
                    reason=form.cleaned_data["reason"],
                )
            except ActionRefused as exc:
                error = str(exc)
            else:
                return redirect("message-detail", pk=pk)
    else:
        form = EditPayloadForm(initial={"payload": _pretty(message.payload)[0]})
    status = 400 if request.method == "POST" else 200
    return render(
        request,
        "messages/message_edit.html",
        {"message": message, "form": form, "error": error, "editable": message.state == MessageState.DEAD_LETTERED},
        status=status,
    )


@never_cache  # answers with the message's page or body, payload included
@require_POST
@console_view(VIEW_PERM, ACTION_PERMS["restore"])
def message_restore_view(request, pk: int):
    message = get_object_or_404(Message, pk=pk)
    form = RestoreForm(request.POST)
    if not form.is_valid():
        return _after_action(
            request, pk, status=400, flash="The reason is not valid: " + form.errors.as_text(), flash_level="err"
        )
    reason = form.cleaned_data["reason"].strip()
    changed = message_operator_restore(message_ids=[message.pk], actor=actor_of(request), reason=reason)
    flash = "Restored: the message is queued again." if changed else f"Nothing changed: the message is {message.state}."
    return _after_action(request, pk, flash=flash, flash_level="ok" if changed else "warn")

"""Pauses of the queue: the form that pauses a message type, entity type or terminal, and resume."""

from __future__ import annotations

from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from messages.forms import PauseForm, ResumeForm
from messages.models import PAUSE_PERM, VIEW_PERM
from messages.selectors.pauses import queue_pauses
from messages.services.console import ActionRefused
from messages.services.pauses import queue_pause_create, queue_pause_resume
from syncadmin.lib.console import actor_of, console_view

RETURN_PAGES = {"/": "dashboard", "/pauses/": "pause-list"}  # the pages with resume buttons (their "next")


def _page(request, form, *, status: int = 200, flash: str = "", level: str = "ok"):
    context = {"form": form, "pauses": queue_pauses(), "flash": flash, "flash_level": level}
    return render(request, "messages/pauses.html", context, status=status)


@console_view(VIEW_PERM)
def queue_pause_list(request):
    """GET: the active pauses and the form (prefilled from ?scope=&value=); POST: pause (PAUSE_PERM)."""
    if request.method != "POST":
        initial = {k: request.GET.get(k, "") for k in ("scope", "value")}
        return _page(request, PauseForm(initial=initial))
    if not request.user.has_perm(PAUSE_PERM):
        return _page(
            request, PauseForm(request.POST), status=403, flash="You may see pauses but not set them.", level="err"
        )
    form = PauseForm(request.POST)
    if not form.is_valid():
        return _page(request, form, status=400)
    try:
        pause = queue_pause_create(actor=actor_of(request), **form.cleaned_data)
    except ActionRefused as exc:
        form.add_error(exc.field if exc.field in form.fields else None, str(exc))
        return _page(request, form, status=400)
    return _page(request, PauseForm(), flash=f"Paused {pause}. Its messages wait as Received until you resume.")


@require_POST
@console_view(VIEW_PERM, PAUSE_PERM)
def queue_resume_view(request, pk: int):
    form = ResumeForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    try:
        pause = queue_pause_resume(pause_id=pk, actor=actor_of(request), reason=reason)
        flash, level = f"Resumed {pause}: the workers take its messages in their order.", "ok"
    except ActionRefused as exc:
        flash, level = str(exc), "warn"
    back = request.POST.get("next", "")
    if back in RETURN_PAGES:  # only where the resume buttons are: never a URL or a view name the caller chose
        return redirect(reverse(RETURN_PAGES[back]))
    return _page(request, PauseForm(), flash=flash, level=level)

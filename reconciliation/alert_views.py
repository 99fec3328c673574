"""Console pages for alerts: incidents (live first), the notification outbox, the rules and their editing.

Permissions (checked here, on the server, for every page and action):
- reconciliation.view_incident: the alerts pages (Viewers, Support, Terminal admins)
- reconciliation.change_alertrule: edit a rule's threshold, hold time and switch, and resend a failed
  notification (Terminal admins)
"""

from __future__ import annotations

from django.contrib import messages as flash
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRefresh

from reconciliation.alerts import selectors
from reconciliation.alerts.incidents import alert_notification_resend, alert_rule_update
from reconciliation.filtersets import AlertNotificationFilterSet, IncidentFilterSet
from reconciliation.forms import AlertRuleForm
from reconciliation.models import AlertNotification, AlertRule
from reconciliation.tables import AlertNotificationTable, AlertRuleTable, IncidentTable
from syncadmin.lib.console import actor_of, console_view
from syncadmin.lib.listing import ListPage

VIEW = "reconciliation.view_incident"
EDIT = "reconciliation.change_alertrule"
PER_PAGE = 50


@require_GET
@console_view(VIEW)
def alert_list(request):
    filterset = IncidentFilterSet(request.GET or None, queryset=selectors.incident_list_queryset())
    listing = ListPage(request, table=IncidentTable(filterset.selected), filterset=filterset, per_page=PER_PAGE)
    can_edit = request.user.has_perm(EDIT)
    return listing.render(
        "reconciliation/alert_list.html",
        {
            "rules": AlertRuleTable(selectors.alert_rules(), can_edit=can_edit),
            "failed_notifications": selectors.notification_failed_count(),
        },
    )


@require_GET
@console_view(VIEW)
def notification_list(request):
    filterset = AlertNotificationFilterSet(request.GET or None, queryset=selectors.notification_list_queryset())
    table = AlertNotificationTable(filterset.selected, can_resend=request.user.has_perm(EDIT))
    listing = ListPage(request, table=table, filterset=filterset, per_page=PER_PAGE)
    return listing.render("reconciliation/alert_notifications.html")


@require_POST
@console_view(VIEW, EDIT)
def notification_resend(request, pk: int):
    notification = get_object_or_404(AlertNotification, pk=pk)
    if alert_notification_resend(notification_id=notification.pk, actor=actor_of(request)):
        flash.success(request, f"Notification #{notification.pk} ({notification.channel}) is being sent again.")
    else:
        flash.error(request, f"Notification #{notification.pk} is {notification.state}, not failed: nothing to resend.")
    # From the list's button (htmx): the page reloads where it is, filters kept, and shows the message.
    return HttpResponseClientRefresh() if request.htmx else redirect("alerts:notifications")


@require_http_methods(["GET", "POST"])
@console_view(VIEW, EDIT)
def rule_edit(request, pk: int):
    rule = get_object_or_404(AlertRule, pk=pk)
    initial = {"enabled": rule.enabled, "threshold": rule.threshold, "for_minutes": rule.for_minutes}
    form = AlertRuleForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        alert_rule_update(
            rule=rule, enabled=data["enabled"], threshold=data["threshold"], for_minutes=data["for_minutes"],
            actor=actor_of(request), reason=data["reason"],
        )  # fmt: skip
        flash.success(request, f"Rule “{rule.get_kind_display()}” saved.")
        return redirect("alerts:list")
    return render(
        request, "reconciliation/alert_rule_form.html", {"form": form, "rule": rule}, status=400 if form.errors else 200
    )

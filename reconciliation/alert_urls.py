from django.urls import path

from reconciliation import alert_views

app_name = "alerts"

urlpatterns = [
    path("", alert_views.alert_list, name="list"),
    path("notifications/", alert_views.notification_list, name="notifications"),
    path("notifications/<int:pk>/resend/", alert_views.notification_resend, name="notification_resend"),
    path("rules/<int:pk>/edit/", alert_views.rule_edit, name="rule_edit"),
]

from django.urls import path

from messages import views, views_scale

urlpatterns = [
    path("messages/", views.message_list, name="message-list"),
    path("messages/count/", views.message_count, name="message-count"),
    path("messages/export.csv", views.message_export, name="message-export"),
    path("messages/bulk/", views.message_bulk, name="message-bulk"),
    path("messages/<int:pk>/", views.message_detail, name="message-detail"),
    path("messages/<int:pk>/retry/", views.message_retry_view, name="message-retry"),
    path("messages/<int:pk>/discard/", views.message_discard_view, name="message-discard"),
    path("messages/<int:pk>/edit/", views.message_edit_view, name="message-edit"),
    path("messages/<int:pk>/restore/", views_scale.message_restore_view, name="message-restore"),
    path("bulk-jobs/", views_scale.bulk_job_list, name="bulk-job-list"),
    path("bulk-jobs/<int:pk>/", views_scale.bulk_job_detail, name="bulk-job-detail"),
    path("bulk-jobs/<int:pk>/cancel/", views_scale.bulk_job_cancel_view, name="bulk-job-cancel"),
    path("retention/", views_scale.retention, name="retention"),
    path("dead-letters/", views.deadletter_list, name="deadletter-list"),
    path("dead-letters/note/", views.deadletter_note, name="deadletter-note"),
]

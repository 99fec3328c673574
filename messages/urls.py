from django.urls import path

from messages.views import bulk, dead_letters, message_detail, message_list, pauses, retention

urlpatterns = [
    path("messages/", message_list.message_list, name="message-list"),
    path("messages/count/", message_list.message_count, name="message-count"),
    path("messages/export.csv", message_list.message_export, name="message-export"),
    path("messages/bulk/", bulk.message_bulk, name="message-bulk"),
    path("messages/<int:pk>/", message_detail.message_detail, name="message-detail"),
    path("messages/<int:pk>/retry/", message_detail.message_retry_view, name="message-retry"),
    path("messages/<int:pk>/discard/", message_detail.message_discard_view, name="message-discard"),
    path("messages/<int:pk>/edit/", message_detail.message_edit_view, name="message-edit"),
    path("messages/<int:pk>/restore/", message_detail.message_restore_view, name="message-restore"),
    path("bulk-jobs/", bulk.bulk_job_list, name="bulk-job-list"),
    path("bulk-jobs/<int:pk>/", bulk.bulk_job_detail, name="bulk-job-detail"),
    path("bulk-jobs/<int:pk>/cancel/", bulk.bulk_job_cancel_view, name="bulk-job-cancel"),
    path("retention/", retention.retention, name="retention"),
    path("dead-letters/", dead_letters.deadletter_list, name="deadletter-list"),
    path("dead-letters/note/", dead_letters.deadletter_note, name="deadletter-note"),
    path("pauses/", pauses.queue_pause_list, name="pause-list"),
    path("pauses/<int:pk>/resume/", pauses.queue_resume_view, name="pause-resume"),
]

from django.urls import path

from messages import views

urlpatterns = [
    path("messages/", views.message_list, name="message-list"),
    path("messages/count/", views.message_count, name="message-count"),
    path("messages/export.csv", views.message_export, name="message-export"),
    path("messages/bulk/", views.message_bulk, name="message-bulk"),
    path("messages/<int:pk>/", views.message_detail, name="message-detail"),
    path("messages/<int:pk>/retry/", views.message_retry_view, name="message-retry"),
    path("messages/<int:pk>/discard/", views.message_discard_view, name="message-discard"),
    path("messages/<int:pk>/edit/", views.message_edit_view, name="message-edit"),
    path("dead-letters/", views.deadletter_list, name="deadletter-list"),
    path("dead-letters/note/", views.deadletter_note, name="deadletter-note"),
]

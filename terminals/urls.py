from django.urls import path

from terminals import views

urlpatterns = [
    path("terminals/", views.terminal_list, name="terminal-list"),
    path("terminals/new/", views.terminal_create_view, name="terminal-create"),
    path("terminals/<int:pk>/", views.terminal_detail, name="terminal-detail"),
    path("terminals/<int:pk>/edit/", views.terminal_edit_view, name="terminal-edit"),
    path("terminals/<int:pk>/enabled/", views.terminal_toggle_view, name="terminal-toggle"),
    path("terminals/<int:pk>/rotate-key/", views.terminal_rotate_view, name="terminal-rotate-key"),
]

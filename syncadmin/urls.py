from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from syncadmin import views

urlpatterns = [
    path("admin/", admin.site.urls),
    # Console (login required on every page; see syncadmin.console.console_view).
    path("", views.dashboard, name="dashboard"),
    path("audit/", views.audit_list, name="audit-list"),
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include("messages.urls")),
    path("", include("terminals.urls")),
]

from django.urls import path

from reconciliation import views

app_name = "reconciliation"

urlpatterns = [
    path("", views.matrix, name="matrix"),
    path("discrepancies/", views.discrepancy_list, name="discrepancies"),
    path("discrepancies/<int:pk>/explain/", views.explain, name="explain"),
    path("runs/", views.run_list, name="runs"),
    path("runs/<int:pk>/", views.run_detail, name="run_detail"),
    path("run/", views.run_now, name="run_now"),
    path("cell/", views.cell, name="cell"),
    path("resync/", views.resync, name="resync"),
    path("recount/", views.recount, name="recount"),
]

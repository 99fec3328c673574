from django.db import models


class ReportedCount(models.Model):
    """A terminal's own count of one entity type, as of its clock (ReportCounts)."""

    terminal = models.ForeignKey("terminals.Terminal", on_delete=models.CASCADE, related_name="reported_counts")
    entity_type = models.CharField(max_length=40)
    count = models.BigIntegerField()
    as_of = models.DateTimeField()
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["terminal", "entity_type", "-as_of"], name="reported_latest_idx")]

from django import template

register = template.Library()


@register.filter
def intcomma_lite(value):
    """1234567 -> "1,234,567" (without loading django.contrib.humanize)."""
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return value


@register.filter
def duration_lite(value):
    """Seconds -> "45 s", "3 min 20 s", "2 h 5 min": how long, at the precision a person reads."""
    try:
        seconds = round(float(value))
    except (TypeError, ValueError):
        return value
    if seconds < 60:
        return f"{max(seconds, 0)} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"

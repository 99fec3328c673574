from django import template

register = template.Library()


@register.filter
def intcomma_lite(value):
    """1234567 -> "1,234,567" (without loading django.contrib.humanize)."""
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return value

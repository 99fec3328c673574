"""``{% load terminal_health %}{% terminal_health_badge healths terminal %}``.

``healths`` is the dict from ``terminals.selectors.terminal_health()`` (computed once per page
by the view), ``terminal`` a Terminal or its pk. Renders templates/terminals/_health_badge.html.
"""

from django import template

register = template.Library()


@register.inclusion_tag("terminals/_health_badge.html")
def terminal_health_badge(healths, terminal):
    pk = getattr(terminal, "pk", terminal)
    health = (healths or {}).get(pk)
    return {"health": health, "level": health.level if health else "unknown"}

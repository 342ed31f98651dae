"""Money as integer minor units with a currency; times in UTC with a slot for the viewer's local time."""
from datetime import UTC

from django import template
from django.utils.html import format_html

register = template.Library()

# ISO 4217 minor-unit exponents that are not 2.
_EXPONENT = {"JPY": 0, "KRW": 0, "ISK": 0, "CLP": 0, "VND": 0, "HUF": 2, "BHD": 3, "KWD": 3, "JOD": 3, "OMR": 3, "TND": 3}


@register.filter
def money(amount_minor, currency):
    if amount_minor is None:
        return ""
    exponent = _EXPONENT.get((currency or "").strip(), 2)
    value = amount_minor / (10 ** exponent)
    return f"{value:,.{exponent}f} {currency}"


@register.filter
def utc(moment):
    """`<time>` in UTC; static/js/support.js adds the viewer's local time beside it."""
    if moment is None:
        return ""
    moment = moment.astimezone(UTC)
    return format_html('<time datetime="{}" data-local>{} UTC</time>', moment.isoformat(),
                       moment.strftime("%Y-%m-%d %H:%M:%S"))


@register.filter
def percent(value, digits=1):
    if value is None:
        return "n/a"
    return f"{value * 100:.{int(digits)}f}%"


@register.filter
def get_item(mapping, key):
    return (mapping or {}).get(key)

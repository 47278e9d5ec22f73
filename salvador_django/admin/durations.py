"""Durations written for people: ``850 ms``, ``1.2 s``, ``3 min 4 s``, ``2 h 5 min``."""

from __future__ import annotations

from datetime import timedelta

from django.utils.translation import gettext as _


def format_duration(duration: timedelta | float) -> str:
    """``duration`` (a timedelta or seconds) in the largest units that fit, two at most."""
    seconds = duration.total_seconds() if isinstance(duration, timedelta) else duration
    seconds = max(seconds, 0.0)
    if seconds < 1:
        return _("%(n)d ms") % {"n": round(seconds * 1000)}
    if seconds < 10:
        return _("%(n).1f s") % {"n": seconds}
    if seconds < 60:
        return _("%(n)d s") % {"n": seconds}
    whole = int(seconds)
    if whole < 3600:
        return _("%(m)d min %(s)d s") % {"m": whole // 60, "s": whole % 60}
    if whole < 86400:
        return _("%(h)d h %(m)d min") % {"h": whole // 3600, "m": whole % 3600 // 60}
    return _("%(d)d d %(h)d h") % {"d": whole // 86400, "h": whole % 86400 // 3600}

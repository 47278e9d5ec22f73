"""Times written for people.

Durations in the largest units that fit (``850 ms``, ``1.2 s``, ``3 min 4 s``,
``2 h 5 min``); moments to the second, in the current time zone, named
(``2026-11-30 12:00:05 UTC``), so they can be matched against worker logs.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import dateformat, timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _

DATE_FORMAT, TIME_FORMAT = "Y-m-d", "H:i:s T"


def format_duration(duration: timedelta | float) -> str:
    """``duration`` (a timedelta or seconds) in the largest units that fit, two at most."""
    seconds = duration.total_seconds() if isinstance(duration, timedelta) else duration
    seconds = max(seconds, 0.0)
    if round(seconds * 1000) < 1000:
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


def format_moment(moment: datetime | None) -> SafeString | None:
    """``moment`` as a ``<time>`` to the second, or None when there is none.

    The date and the time are spans a narrow column may put on two lines.
    """
    if moment is None:
        return None
    local = timezone.localtime(moment) if timezone.is_aware(moment) else moment
    return format_html(
        '<time class="salvador-moment" datetime="{}"><span>{}</span> <span>{}</span></time>',
        moment.isoformat(),
        dateformat.format(local, DATE_FORMAT),
        dateformat.format(local, TIME_FORMAT),
    )

"""Date bounds for search filters: ``YYYY``, ``YYYY-MM``, ``YYYY-MM-DD`` or ISO date-time.

Light on purpose (no model code), so the CLI checks dates before anything heavy loads.
"""

from __future__ import annotations

import calendar
import re
from datetime import datetime

_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2})(?::(\d{2})(?::(\d{2}))?)?)?)?)?$")
_HELP = "use YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS]"


def normalize_date(text: str, *, upper: bool = False) -> str:
    """Check a date bound and return it as ISO text; an upper bound is padded to its end.

    ``"2020"`` -> ``"2020"`` (lower) or ``"2020-12-31T23:59:59"`` (upper); ``"2020-02"``
    (upper) -> ``"2020-02-29T23:59:59"`` (the month's real last day). Raises ``ValueError``
    for other shapes and for dates that do not exist (``2020-13``, ``2020-02-30``, ``T25:00``).
    """
    value = text.strip().replace(" ", "T")
    match = _DATE.match(value)
    if not match:
        raise ValueError(f"not a date: {text!r} ({_HELP})")
    year, month, day, hour, minute, second = (int(g) if g else None for g in match.groups())
    try:
        datetime(year, month or 1, day or 1, hour or 0, minute or 0, second or 0)
    except ValueError as exc:
        raise ValueError(f"not a date: {text!r} ({exc})") from None
    if not upper:
        return value
    month = month or 12
    day = day or calendar.monthrange(year, month)[1]
    hour = 23 if hour is None else hour
    minute = 59 if minute is None else minute
    second = 59 if second is None else second
    return f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}"

"""Pure text helpers for the GUI: sizes, durations, rates, dates and counters (no Qt)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

_UNITS = ("bytes", "KB", "MB", "GB", "TB")


def human_size(n: int | None) -> str:
    """``1536`` -> ``"1.5 KB"`` (decimal units, as file managers show them)."""
    if n is None:
        return "—"
    if n < 1000:
        return f"{n} bytes" if n != 1 else "1 byte"
    value = float(n)
    for unit in _UNITS[1:]:
        value /= 1000.0
        if value < 1000 or unit == _UNITS[-1]:
            return f"{value:.1f} {unit}" if value < 100 else f"{value:.0f} {unit}"
    raise AssertionError("unreachable")


def human_duration(seconds: float | None) -> str:
    """``3725`` -> ``"1 h 2 min"``; ``42.4`` -> ``"42 s"``; ``0.3`` -> ``"under 1 s"``."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "—"
    if seconds < 1:
        return "under 1 s"
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s" if minutes < 10 else f"{minutes} min"
    return f"{secs} s"


def rate_text(rate: float | None, unit: str = "photos") -> str:
    """``12.34`` -> ``"12.3 photos/s"``."""
    if rate is None or not math.isfinite(rate) or rate <= 0:
        return f"— {unit}/s"
    if rate >= 100:
        return f"{rate:.0f} {unit}/s"
    return f"{rate:.1f} {unit}/s"


def count_text(n: int, singular: str, plural: str | None = None) -> str:
    """``count_text(3, "photo")`` -> ``"3 photos"`` with thousands separators."""
    word = singular if n == 1 else (plural or singular + "s")
    return f"{n:,} {word}"


def parse_timestamp(text: str | None) -> datetime | None:
    """An ISO date/time from the store (``taken_at``) as a naive or aware datetime, or None."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        for fmt in ("%Y:%m:%d %H:%M:%S", "%Y-%m-%d"):
            try:
                return datetime.strptime(text, fmt)
            except ValueError:
                continue
    return None


def date_text(value: datetime | None) -> str:
    """A short, locale-neutral date for the preview and tooltips."""
    if value is None:
        return "unknown date"
    if value.hour == value.minute == value.second == 0:
        return value.strftime("%Y-%m-%d")
    return value.strftime("%Y-%m-%d %H:%M")


@dataclass(frozen=True)
class CounterState:
    """What the word-piece counter under the query box shows."""

    text: str
    level: str  # "empty", "ok", "near" (over 90 %) or "over" (will be truncated)
    tooltip: str


def word_piece_counter(
    word_pieces: int | None, capacity: int | None, truncated: bool, *, at_least: bool = False
) -> CounterState:
    """The counter text and warning level for a query of ``word_pieces`` against ``capacity``.

    ``at_least``: only the start of a very long text was counted (``"over 400 / 124"``).
    """
    if word_pieces is None or capacity is None:
        return CounterState("— word pieces", "empty", "The model is still loading.")
    text = f"{'over ' if at_least else ''}{word_pieces} / {capacity} word pieces"
    if truncated or word_pieces > capacity:
        extra = f"{'over ' if at_least else ''}{word_pieces - capacity}"
        return CounterState(
            text,
            "over",
            f"The model reads the first {capacity} word pieces; the last {extra} will be ignored."
            " Shorten the description or move the important details to the front.",
        )
    tooltip = (
        f"The model reads up to {capacity} word pieces (roughly words and word parts) of a"
        " description."
    )
    if word_pieces == 0:
        return CounterState(text, "empty", tooltip)
    if word_pieces > 0.9 * capacity:
        return CounterState(text, "near", tooltip)
    return CounterState(text, "ok", tooltip)

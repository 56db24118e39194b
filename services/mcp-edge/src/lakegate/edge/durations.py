"""Durations as people write them: `90`, `"15m"`, `"1h30m"`, `"1 day"` ⇄ seconds.

A schedule's interval reaches the edge in whatever form the model finds natural; the catalog
stores seconds. Units: s, m, h, d, w (and their long names, singular or plural).
"""

from __future__ import annotations

import re

from lakegate.common.errors import InvalidInput

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_UNIT_NAMES = {
    "s": "s",
    "sec": "s",
    "secs": "s",
    "second": "s",
    "seconds": "s",
    "m": "m",
    "min": "m",
    "mins": "m",
    "minute": "m",
    "minutes": "m",
    "h": "h",
    "hr": "h",
    "hrs": "h",
    "hour": "h",
    "hours": "h",
    "d": "d",
    "day": "d",
    "days": "d",
    "w": "w",
    "week": "w",
    "weeks": "w",
}
_PART = re.compile(r"\s*(\d+)\s*([a-z]+)\s*")
_EXAMPLES = "e.g. '15m', '1h', '1d', '1h30m' or 3600"


def seconds_of(every: str | int, *, name: str = "every") -> int:
    """The number of seconds `every` stands for; InvalidInput when it is not a duration."""
    if isinstance(every, int):
        if every <= 0:
            raise InvalidInput(f"{name}={every} is not a positive number of seconds: {_EXAMPLES}")
        return every
    text = every.strip().lower()
    if len(text) > 40:  # no real duration is this long; Python refuses to read numbers of 4,300+ digits
        raise InvalidInput(f"{name} is {len(text)} characters long, too long for a duration: {_EXAMPLES}")
    if text.isdigit():
        return seconds_of(int(text), name=name)
    total, position = 0, 0
    while position < len(text):
        part = _PART.match(text, position)
        unit = _UNIT_NAMES.get(part.group(2)) if part else None
        if part is None or unit is None:
            raise InvalidInput(
                f"{name}={every!r} is not a duration: write a number of seconds, or numbers with a unit "
                f"(s, m, h, d or w), {_EXAMPLES}"
            )
        total += int(part.group(1)) * _UNIT_SECONDS[unit]
        position = part.end()
    if total <= 0:
        raise InvalidInput(f"{name}={every!r} is not a positive duration: {_EXAMPLES}")
    return total


def spoken(seconds: int) -> str:
    """`seconds` in the shortest form `seconds_of` reads back, e.g. 5400 → '1h30m'."""
    parts: list[str] = []
    rest = seconds
    for unit in ("w", "d", "h", "m", "s"):
        count, rest = divmod(rest, _UNIT_SECONDS[unit])
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"

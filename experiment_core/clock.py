"""The clock, at the edge, and the one timestamp format of the registry and the ledger (ISO-8601, UTC)."""

from __future__ import annotations

import datetime as dt
import os

from experiment_core.errors import UserError

CLOCK_ENV = "EXPERIMENT_HOOK_NOW"


def utc_now() -> dt.datetime:
    """The clock, at the edge: ``EXPERIMENT_HOOK_NOW`` (ISO-8601) overrides it, for tests and what-if runs."""
    override = os.environ.get(CLOCK_ENV)
    if override:
        moment = parse_ts(override)
        if moment is None:
            raise UserError(CLOCK_ENV, f"{override!r} is not an ISO-8601 time", "unset it or fix it")
        return moment
    return dt.datetime.now(dt.timezone.utc)


def format_ts(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_ts(text: str) -> dt.datetime | None:
    if not text:
        return None
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
_DAYS: dict[str, int | None] = {}  # "YYYY-MM-DD" -> days since 1970-01-01 (None: not a date)


def epoch_seconds(text: str) -> float | None:
    """``parse_ts(text).timestamp()`` (None when ``text`` does not parse), bit for bit, without building a datetime
    for the ledger's own form ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z`` (a cold index build reads one per note)."""
    if len(text) in (20, 27) and text[-1] == "Z" and text.isascii() and text[10] == "T" and text[13] == text[16] == ":":
        day = _DAYS.get(text[:10], -1)
        if day == -1:
            try:
                day = dt.date.fromisoformat(text[:10]).toordinal() - _EPOCH_ORDINAL
            except ValueError:
                day = None
            day = day if text[4] == text[7] == "-" else None
            _DAYS[text[:10]] = day
        hms = text[11:13] + text[14:16] + text[17:19]
        fraction = text[20:26] if len(text) == 27 and text[19] == "." else "0" if len(text) == 20 else ""
        if day is not None and hms.isdigit() and fraction.isdigit():
            h, m, s = int(hms[:2]), int(hms[2:4]), int(hms[4:])
            if h < 24 and m < 60 and s < 60:
                return ((day * 86400 + h * 3600 + m * 60 + s) * 1_000_000 + int(fraction)) / 1_000_000  # as timestamp()
    moment = parse_ts(text)
    return None if moment is None else moment.timestamp()

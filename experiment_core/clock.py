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

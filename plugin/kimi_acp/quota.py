"""Kimi Code's plan quota: ``GET {baseUrl}/v1/usages`` (``https://api.kimi.com/coding/v1/usages``).

Kimi does not document this endpoint. Its shape is taken from the public clients that read it
and agree on it (claude-code-router's ``kimi-code-usages`` parser, OpenClaw's own Kimi plugin's
``usage.ts``, and others): ``Authorization: Bearer <key>``, and a JSON object

    {"usage":  {"limit": 100, "used": 12, "remaining": 88, "resetTime": "2026-12-08T00:00:00Z"},
     "limits": [{"window": {"duration": 300, "timeUnit": "TIME_UNIT_MINUTE"},
                 "detail": {"limit": 100, "used": 40, "remaining": 60, "resetTime": "..."}}]}

``usage`` is the plan's weekly quota; each ``limits`` item is a rolling window (the 5-hour one).
Numbers may come as strings; ``used`` or ``remaining`` may be missing (one follows from the
other and ``limit``); a reset is an ISO time or epoch seconds/milliseconds (``resetTime``,
``reset_time``, ``resetAt``, ``reset_at``). Anything else is a :class:`QuotaShapeError`, not
a guess.

:func:`quota_windows` is the API for other code (e.g. admission that respects the quota): the
windows of a backend, shortest first. :func:`parse_usages` is the parser alone; the local stub
(``stub/server.py``) serves the same shape from :func:`usages_payload`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from .errors import KimiAcpError

WEEK_MINUTES = 7 * 24 * 60
_UNIT_MINUTES = {"MINUTE": 1, "HOUR": 60, "DAY": 24 * 60, "WEEK": WEEK_MINUTES, "SECOND": 1 / 60}


class QuotaShapeError(KimiAcpError):
    """Raised when an answer of the quota endpoint is not the shape kimi-acp knows."""


class QuotaUnavailableError(KimiAcpError):
    """Raised when the quota cannot be read: no quota endpoint for the backend, no key, the
    request failed, or it was refused."""


class NoQuotaEndpointError(QuotaUnavailableError):
    """Raised when a backend has no quota endpoint kimi-acp knows (passthrough, Anthropic, a
    custom backend): there is nothing to read, now or later."""


@dataclass(frozen=True)
class QuotaWindow:
    """One quota window of a plan. ``minutes`` is its length (300: the rolling 5 hours;
    10080: the week); ``limit``/``used``/``remaining`` are in the plan's own units (often
    percent); ``used_fraction`` is used/limit (0..1); ``resets_at`` is an ISO-8601 UTC time."""

    name: str
    minutes: int | None
    limit: float | None
    used: float | None
    remaining: float | None
    used_fraction: float | None
    resets_at: str | None

    @property
    def exhausted(self) -> bool:
        return self.used_fraction is not None and self.used_fraction >= 1.0

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        return {"name": out["name"], "minutes": out["minutes"], "limit": out["limit"], "used": out["used"],
                "remaining": out["remaining"], "usedFraction": out["used_fraction"], "resetsAt": out["resets_at"]}

    def describe(self) -> str:
        """``5h: 40% used (60 of 100 left), resets 2026-12-03T17:00:00Z``."""
        text = f"{self.name}:"
        if self.used_fraction is not None:
            text += f" {self.used_fraction * 100:.0f}% used"
        if self.remaining is not None and self.limit is not None:
            text += f" ({_num(self.remaining)} of {_num(self.limit)} left)"
        if self.resets_at:
            text += f", resets {self.resets_at}"
        return text


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


def _number(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str) and v.strip():
        try:
            return float(v.strip())
        except ValueError:
            return None
    return None


def _reset(row: Mapping[str, Any]) -> str | None:
    for key in ("resetTime", "reset_time", "resetAt", "reset_at"):
        v = row.get(key)
        n = _number(v)
        if n is not None and n > 0:
            seconds = n / 1000 if n >= 1e12 else n
            return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if isinstance(v, str) and v.strip():
            try:
                when = datetime.fromisoformat(v.strip().replace("Z", "+00:00"))
            except ValueError:
                return v.strip()
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return None


def _minutes(window: Mapping[str, Any]) -> int | None:
    duration = _number(window.get("duration"))
    unit = str(window.get("timeUnit") or window.get("time_unit") or "").upper()
    if duration is None or duration <= 0:
        return None
    factor = next((f for name, f in _UNIT_MINUTES.items() if name in unit), None)
    return int(round(duration * factor)) if factor else None


def _label(minutes: int | None, fallback: str) -> str:
    if minutes is None:
        return fallback
    if minutes == WEEK_MINUTES:
        return "weekly"
    if minutes % (24 * 60) == 0:
        return f"{minutes // (24 * 60)}d"
    if minutes % 60 == 0:
        return f"{minutes // 60}h"
    return f"{minutes}m"


def _window(row: Any, name: str, minutes: int | None, where: str) -> QuotaWindow:
    if not isinstance(row, Mapping):
        raise QuotaShapeError(f"quota answer: {where} is not an object")
    limit, used, remaining = _number(row.get("limit")), _number(row.get("used")), _number(row.get("remaining"))
    if used is None and remaining is not None and limit is not None:
        used = max(0.0, limit - remaining)
    if remaining is None and used is not None and limit is not None:
        remaining = max(0.0, limit - used)
    if used is None and remaining is None:
        raise QuotaShapeError(f"quota answer: {where} has neither used nor remaining")
    fraction = min(1.0, max(0.0, used / limit)) if used is not None and limit else None
    return QuotaWindow(name, minutes, limit, used, remaining, fraction, _reset(row))


def parse_usages(payload: Any) -> list[QuotaWindow]:
    """The windows in an answer of ``/v1/usages``, shortest first (see the module docstring).

    Raises :class:`QuotaShapeError` when the answer has neither a ``usage`` summary nor
    ``limits``, or one of them is not the known shape."""
    if not isinstance(payload, Mapping):
        raise QuotaShapeError("quota answer: not a JSON object")
    summary, limits = payload.get("usage"), payload.get("limits")
    if summary is None and limits is None:
        raise QuotaShapeError(f"quota answer: no 'usage' or 'limits' (keys: {', '.join(sorted(payload)) or 'none'})")
    windows: list[QuotaWindow] = []
    if summary is not None:
        windows.append(_window(summary, "weekly", WEEK_MINUTES, "usage"))
    if limits is not None:
        if not isinstance(limits, list):
            raise QuotaShapeError("quota answer: 'limits' is not a list")
        for i, item in enumerate(limits):
            if not isinstance(item, Mapping):
                raise QuotaShapeError(f"quota answer: limits[{i}] is not an object")
            window = item.get("window") if isinstance(item.get("window"), Mapping) else item
            minutes = _minutes(window)
            detail = item.get("detail") if isinstance(item.get("detail"), Mapping) else item
            named = next((str(v) for v in (item.get("name"), item.get("title"), item.get("scope")) if isinstance(v, str) and v), None)
            w = _window(detail, named or _label(minutes, f"limit {i + 1}"), minutes, f"limits[{i}]")
            if not any(o.minutes == w.minutes and o.minutes is not None for o in windows):
                windows.append(w)
    return sorted(windows, key=lambda w: (w.minutes is None, w.minutes or 0))


def quota_url(backend: Any) -> str | None:
    """Where ``backend`` answers its quota (its base URL + ``quota_path``), or None."""
    path = getattr(backend, "quota_path", None)
    if not path or not backend.base_url:
        return None
    return backend.base_url.rstrip("/") + path


def fetch_quota(backend: Any, key: str, *, timeout: float = 10.0, transport: Any = None) -> list[QuotaWindow]:
    """GET the backend's quota windows with ``key`` (see :func:`parse_usages`).

    Raises :class:`QuotaUnavailableError` (no endpoint, no answer, refused) or
    :class:`QuotaShapeError`. The key is sent as a Bearer token, as Kimi's own clients do."""
    import httpx

    url = quota_url(backend)
    if url is None:
        raise NoQuotaEndpointError(f"backend '{backend.name}' has no quota endpoint kimi-acp knows")
    headers = {"authorization": f"Bearer {key}", "accept": "application/json", "user-agent": backend.probe_user_agent}
    try:
        with httpx.Client(timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)), transport=transport) as client:
            resp = client.get(url, headers=headers)
    except httpx.HTTPError as exc:
        raise QuotaUnavailableError(f"{url}: {type(exc).__name__}") from None
    if resp.status_code in (401, 403):
        raise QuotaUnavailableError(f"{url}: the key was refused ({resp.status_code})")
    if resp.status_code != 200:
        raise QuotaUnavailableError(f"{url}: HTTP {resp.status_code}")
    try:
        payload = resp.json()
    except ValueError:
        raise QuotaShapeError(f"{url}: the answer is not JSON") from None
    return parse_usages(payload)


def quota_windows(cfg: Any, backend: str = "kimi", *, environ: Mapping[str, str] | None = None,
                  timeout: float = 10.0, transport: Any = None) -> list[QuotaWindow]:
    """The quota windows of ``backend`` in ``cfg`` (a loaded :class:`~kimi_acp.config.Config`),
    shortest first, read now from the backend with its key from ``environ`` (default: the
    config's environment). Raises :class:`QuotaUnavailableError` or :class:`QuotaShapeError`."""
    b = cfg.backend(backend)
    if b.passthrough:
        raise NoQuotaEndpointError("passthrough has no quota kimi-acp can read")
    if quota_url(b) is None:
        raise NoQuotaEndpointError(f"backend '{b.name}' has no quota endpoint kimi-acp knows")
    key = b.resolve_key(cfg.environ if environ is None else environ)
    return fetch_quota(b, key, timeout=timeout, transport=transport)


def usages_payload(*, weekly_used: float = 12, five_hour_used: float = 40, limit: float = 100,
                   now: float | None = None, five_hour_reset: float | None = None,
                   weekly_reset: float | None = None) -> dict[str, Any]:
    """An answer of ``/v1/usages`` in the shape above (the stub serves it): a weekly summary
    and the rolling 5-hour window, numbers as strings the way Kimi sends them. The resets
    default to 2 hours (5-hour window) and 3 days (week) from ``now``; ``five_hour_reset`` and
    ``weekly_reset`` (epoch seconds) set them."""
    now = time.time() if now is None else now

    def iso(t: float) -> str:
        return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def row(used: float, reset: float) -> dict[str, str]:
        return {"limit": _num(limit), "used": _num(used), "remaining": _num(max(0.0, limit - used)), "resetTime": iso(reset)}

    weekly = now + 3 * 24 * 3600 if weekly_reset is None else weekly_reset
    five = now + 2 * 3600 if five_hour_reset is None else five_hour_reset
    return {
        "usage": row(weekly_used, weekly),
        "limits": [{"window": {"duration": 300, "timeUnit": "TIME_UNIT_MINUTE"}, "detail": row(five_hour_used, five)}],
    }

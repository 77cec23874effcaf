"""Quota-aware admission: a run waits in the queue, with a reason, instead of starting into 429s.

A backend is *held* (its queued runs wait) while

* **its plan quota is used up**: a window of its quota endpoint (Kimi's ``<baseUrl>/v1/usages``,
  :mod:`.quota`) is exhausted; the hold lasts until that window resets ("Kimi quota: 5-hour
  window resets in 42 min"). The endpoint is read at most every ``limits.quotaCheckSeconds``
  per backend (60 s; 0: never), once more when a used-up window's reset time has passed, and
  never for a backend without one; a spawn whose last answer is fresh costs a file read, no
  request. Nothing is ever sent anywhere but the backend's own base URL.
* **the API just said 429**: a run's Claude Code reports an ``api_retry`` with ``error_status``
  429 and its ``retry_delay_ms`` (the server's ``retry-after``); the backend is paused that long
  for the runs that have not started ("Kimi rate limit: 429, trying again in 12 s"). Without a
  quota endpoint (or when it fails) this is the whole story.

Both live in the state dir (``admission/<backend>.quota.json``, ``admission/<backend>.pause.json``,
0600 in a 0700 dir), so every kimi-acp process on it (the gateway's warm process, acpx's, CLI
spawns) holds the same backend and asks the endpoint once for all. Nothing secret is in them.

:class:`Admission` is what the :class:`~.supervisor.Supervisor` waits on (its ``gate``) before a
run takes its global slot; :func:`hold_now` is the same answer without network for displays
(``kimi-acp ps``, ``/acp status``) and ``kimi-acp spawn``'s early start.
"""

from __future__ import annotations

import inspect
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .hookspecs import hookimpl

ADMISSION_DIR = "admission"
RECHECK_AFTER_RESET = 1.0  # seconds after a used-up window's reset before its quota is read again
RESET_MARGIN = 0.5  # seconds past a reset time before a held run looks again (clocks, rounding)
MAX_SLEEP = 30.0  # a held run looks again at least this often (another process may have learnt more)
FETCH_TIMEOUT = 5.0  # seconds for one read of the quota endpoint


def _file(state_dir: Path | str, backend: str, kind: str) -> Path:
    return Path(state_dir) / ADMISSION_DIR / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', backend)}.{kind}.json"


def _label(backend: str) -> str:
    return backend[:1].upper() + backend[1:]


def _window_words(name: str) -> str:
    m = re.fullmatch(r"(\d+)([mhd])", name)
    if m:
        unit = {"m": "minute", "h": "hour", "d": "day"}[m.group(2)]
        return f"{m.group(1)}-{unit} window"
    return f"{name} window"


def span(seconds: float) -> str:
    """``42 s``, ``42 min``, ``3 h 20 min``, ``4 days``."""
    s = max(0, int(round(seconds)))
    if s < 90:
        return f"{s} s"
    minutes = round(s / 60)
    if minutes < 90:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{round(hours / 24)} days"


@dataclass(frozen=True)
class Hold:
    """Why a backend's queued runs wait, and until when (epoch seconds)."""

    backend: str
    kind: Literal["quota", "rate-limit"]
    until: float
    what: str  # the window ("5h", "weekly"), or the HTTP status

    def describe(self, now: float | None = None) -> str:
        """``Kimi quota: 5-hour window resets in 42 min`` / ``Kimi rate limit: the API answered
        429, trying again in 12 s``."""
        left = span(self.until - (time.time() if now is None else now))
        if self.kind == "quota":
            return f"{_label(self.backend)} quota: {_window_words(self.what)} resets in {left}"
        return f"{_label(self.backend)} rate limit: the API answered {self.what}, trying again in {left}"

    def to_json(self, now: float | None = None) -> dict[str, Any]:
        from datetime import UTC, datetime

        return {"backend": self.backend, "kind": self.kind, "until": datetime.fromtimestamp(self.until, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "reason": self.describe(now)}


def _read(path: Path) -> dict[str, Any] | None:
    try:
        path.stat()
    except OSError:
        return None  # the common case: nothing known, one stat
    from .sessions import read_cache

    data = read_cache(path)
    return data if isinstance(data, dict) else None


def _write(path: Path, data: Mapping[str, Any]) -> None:
    from .sessions import write_cache

    write_cache(path, dict(data))


def _iso_epoch(text: Any) -> float | None:
    if not isinstance(text, str):
        return None
    from datetime import UTC, datetime

    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def _quota_hold(backend: str, data: Mapping[str, Any] | None, now: float) -> Hold | None:
    """The hold a cached quota answer means now: its used-up window that resets last."""
    best: Hold | None = None
    for w in (data or {}).get("windows") or []:
        if not isinstance(w, dict) or not isinstance(w.get("usedFraction"), (int, float)) or w["usedFraction"] < 1.0:
            continue
        until = _iso_epoch(w.get("resetsAt"))
        if until is None:  # used up with no reset time: held until the next read
            checked = data.get("checkedAt") if isinstance(data, Mapping) else None
            until = (checked if isinstance(checked, (int, float)) else now) + 60.0
        if until > now and (best is None or until > best.until):
            best = Hold(backend, "quota", until, str(w.get("name") or "quota"))
    return best


def _pause_hold(backend: str, data: Mapping[str, Any] | None, now: float) -> Hold | None:
    until = (data or {}).get("until")
    if isinstance(until, (int, float)) and until > now:
        return Hold(backend, "rate-limit", float(until), str((data or {}).get("status") or 429))
    return None


def hold_now(state_dir: Path | str, backend: str, now: float | None = None) -> Hold | None:
    """The backend's hold now, from what the state dir knows (no network); the later-ending one
    when both a quota and a rate-limit hold apply. ``None``: runs on it may start."""
    now = time.time() if now is None else now
    holds = [h for h in (_quota_hold(backend, _read(_file(state_dir, backend, "quota")), now),
                         _pause_hold(backend, _read(_file(state_dir, backend, "pause")), now)) if h is not None]
    return max(holds, key=lambda h: h.until) if holds else None


def _stale(data: Mapping[str, Any] | None, ttl: float, now: float) -> bool:
    if ttl <= 0:
        return False
    checked = (data or {}).get("checkedAt")
    if not isinstance(checked, (int, float)):
        return True
    if now - checked >= ttl:
        return True
    # a used-up window whose reset time has passed: read again (once it had a moment to reset)
    for w in (data or {}).get("windows") or []:
        if isinstance(w, dict) and isinstance(w.get("usedFraction"), (int, float)) and w["usedFraction"] >= 1.0:
            until = _iso_epoch(w.get("resetsAt"))
            if until is not None and now >= until and now - checked >= RECHECK_AFTER_RESET:
                return True
    return False


def waiting_reason(state_dir: Path | str, rec: Any, now: float | None = None) -> str | None:
    """Why a queued run has not started (for ``ps`` and ``/acp status``); ``None`` for a run
    that is not queued."""
    if getattr(rec, "status", None) != "queued" or not getattr(rec, "backend", None):
        return None
    hold = hold_now(state_dir, rec.backend, now)
    if hold is not None:
        return hold.describe(now)
    return f"waiting for its turn on backend {rec.backend} (its runs at once: limits.perBackend, maxConcurrent)"


async def _call(fn: Callable[..., Any], *args: Any) -> Any:
    result = fn(*args)
    if inspect.isawaitable(result):
        result = await result
    return result


class Admission:
    """The gate of one :class:`~.spawn.Spawner`'s supervisor, and a ``kimi_acp_run_event``
    plugin that pauses a backend when its runs see 429s.

    ``fetch(backend)`` reads the backend's quota windows (:func:`kimi_acp.quota.quota_windows`),
    raising :class:`~.quota.NoQuotaEndpointError` (never asked again), or another
    :class:`~.errors.KimiAcpError` (no answer, no key, an unknown shape: cached like an answer);
    it runs in a worker thread. ``ttl()`` is
    ``limits.quotaCheckSeconds`` now (the config may be reloaded)."""

    def __init__(self, state_dir: Path | str, *, fetch: Callable[[str], list[Any]] | None = None,
                 ttl: Callable[[], float] | float = 60.0, clock: Callable[[], float] = time.time) -> None:
        self.state_dir = Path(state_dir)
        self._fetch = fetch
        self._ttl = ttl
        self._clock = clock
        self._no_quota: set[str] = set()  # backends without a quota endpoint (asked once per process)
        self._locks: dict[str, Any] = {}
        self.reads = 0  # quota endpoint reads by this process (for tests and doctor)

    def ttl(self) -> float:
        return float(self._ttl() if callable(self._ttl) else self._ttl)

    # ---------------------------------------------------------------- what holds a backend

    def held(self, backend: str) -> Hold | None:
        """The backend's hold from what is known now (no network)."""
        return hold_now(self.state_dir, backend, self._clock())

    async def check(self, backend: str) -> Hold | None:
        """:meth:`held`, after reading the quota endpoint when the cached answer is stale."""
        ttl = self.ttl()
        if self._fetch is not None and ttl > 0 and backend not in self._no_quota:
            path = _file(self.state_dir, backend, "quota")
            if _stale(_read(path), ttl, self._clock()):
                import anyio

                lock = self._locks.get(backend)
                if lock is None:
                    lock = self._locks[backend] = anyio.Lock()
                async with lock:  # one read per backend at a time; the others use its answer
                    if _stale(_read(path), ttl, self._clock()):
                        await self._refresh(backend, path)
        return self.held(backend)

    async def _refresh(self, backend: str, path: Path) -> None:
        import anyio

        from .errors import KimiAcpError
        from .quota import NoQuotaEndpointError

        assert self._fetch is not None
        fetch = self._fetch
        self.reads += 1
        try:
            windows = await anyio.to_thread.run_sync(fetch, backend)
        except NoQuotaEndpointError:
            self._no_quota.add(backend)  # nothing to read, now or later
        except KimiAcpError as exc:  # no answer, refused, a shape it does not know, no key: admission goes on without it
            _write(path, {"checkedAt": self._clock(), "windows": [], "error": str(exc)})
        else:
            _write(path, {"checkedAt": self._clock(), "windows": [w.to_json() for w in windows], "error": None})

    async def wait(self, backend: str, on_hold: Callable[[Hold | None], Any] | None = None) -> None:
        """Return once runs on ``backend`` may start. While held, ``on_hold(hold)`` is called
        when the hold starts or changes, and ``on_hold(None)`` when it ends."""
        import anyio

        shown: Hold | None = None
        while True:
            hold = await self.check(backend)
            if hold is None:
                if shown is not None and on_hold is not None:
                    await _call(on_hold, None)
                return
            if on_hold is not None and (shown is None or (hold.kind, hold.until) != (shown.kind, shown.until)):
                await _call(on_hold, hold)
            shown = hold
            left = hold.until - self._clock()
            ttl = self.ttl()
            nap = min(left + RESET_MARGIN, MAX_SLEEP, ttl if ttl > 0 else MAX_SLEEP)
            await anyio.sleep(max(0.05, nap))

    # ---------------------------------------------------------------- 429s

    def pause(self, backend: str, seconds: float, status: int = 429) -> Hold:
        """Pause ``backend`` for ``seconds`` from now (never shortening a longer pause)."""
        now = self._clock()
        path = _file(self.state_dir, backend, "pause")
        until = now + max(0.0, seconds)
        old = _read(path)
        if old is not None and isinstance(old.get("until"), (int, float)) and old["until"] > until:
            return Hold(backend, "rate-limit", float(old["until"]), str(old.get("status") or status))
        _write(path, {"until": until, "status": status, "at": now, "delayMs": int(seconds * 1000)})
        return Hold(backend, "rate-limit", until, str(status))

    @hookimpl
    def kimi_acp_run_event(self, run: Any, event: Any) -> None:
        """A run's Claude Code retries after a 429: pause its backend for the retry delay."""
        if getattr(event, "subtype", None) != "api_retry" or getattr(event, "error_status", None) != 429:
            return
        backend = getattr(run, "backend", None)
        delay = getattr(event, "retry_delay_ms", None)
        if not backend or not isinstance(delay, (int, float)) or delay <= 0:
            return
        try:
            self.pause(backend, float(delay) / 1000.0, 429)
        except OSError:
            pass  # a full disk: the run goes on; Claude Code still retries on its own

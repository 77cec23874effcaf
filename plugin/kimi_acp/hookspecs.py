"""Every extension point of kimi-acp.

Hooks are synchronous and called with keyword arguments only. Built-in
behaviour (the Kimi preset, the Claude Code harness, the reporters) is
implemented with these same hooks in :mod:`kimi_acp.default_plugins`.
Each hook is documented in ``docs/hooks.md`` as well; a test checks that.
"""

from __future__ import annotations

from typing import Any

import pluggy

from . import PROJECT

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def kimi_acp_register_backends(register: Any) -> None:
    """Register backend presets.

    Called once when the plugin manager is built, before ``openclaw.json`` is read.

    :param register: ``register(backend)``: call it with a :class:`kimi_acp.backends.Backend`
        for each preset. Presets are the lowest layer: providers in ``openclaw.json`` and
        ``plugins.entries.kimi-acp.config.backends`` override them field by field.
    :return: nothing; the return value is ignored.
    """


@hookspec
def kimi_acp_before_spawn(request: Any, context: Any) -> Any:
    """Inspect, rewrite or block a spawn request before its backend is resolved.

    Called for every ``runtime="acp"`` spawn request, in plugin order (last registered first).

    :param request: the :class:`kimi_acp.spawn.SpawnRequest` as received (or as rewritten by
        an earlier plugin).
    :param context: the :class:`kimi_acp.spawn.SpawnContext` (requester agent id and session key,
        the session's ``/model`` choice when known).
    :return: ``None`` to leave the request alone; a new ``SpawnRequest`` to replace it for the
        next plugins and the spawn; or a string to **block** the spawn, the string being the
        reason shown to the requester. The first block stops the chain.
    """


@hookspec
def kimi_acp_spawn_env(request: Any, backend: Any) -> Any:
    """Contribute environment variables to a spawned harness.

    Called after the backend's variables and the request's own ``env`` are applied.

    :param request: the :class:`kimi_acp.spawn.SpawnRequest`.
    :param backend: the resolved :class:`kimi_acp.backends.Backend`.
    :return: a ``dict[str, str]`` of variables to set (a value of ``None`` removes the
        variable), or ``None``. Every plugin's answer is applied, in call order.
    """


@hookspec(firstresult=True)
def kimi_acp_harness_command(request: Any, backend: Any) -> Any:
    """Choose the harness command line.

    Stops at the first non-``None`` result. The built-in Claude Code harness answers last.

    :param request: the :class:`kimi_acp.spawn.SpawnRequest` (``liveInput``: the caller talks to
        the run while it works, so stdin should stay open; ``askPermissions``: someone can answer
        Claude Code's permission questions; see :mod:`kimi_acp.live`).
    :param backend: the resolved :class:`kimi_acp.backends.Backend`.
    :return: a list of strings (the argv; the task is still written to its stdin, never put in
        argv: as a stream-json user message when the argv has ``--input-format stream-json``, else
        as plain text), or ``None`` to let the next plugin answer.
    """


@hookspec
def kimi_acp_run_event(run: Any, event: Any) -> None:
    """Observe a run's progress.

    Called for every event parsed from the harness's output (``system/init``, ``assistant``,
    ``user``, ``system/api_retry``, ``result``, ...), for status changes
    (``{"type": "status", "status": "running", "pid": N}``; ``{"type": "status", "status":
    "queued", "reason": "Kimi quota: 5-hour window resets in 42 min"}`` while the run waits for
    its backend, and ``"reason": None`` when that wait ends), and when a stream line over the
    8 MB cut was dropped whole:
    ``{"type": "kimi-acp", "subtype": "line_cut", "bytes": N, "message": "<one sentence>"}``.
    A live run (:mod:`kimi_acp.live`) adds ``{"type": "kimi-acp", "subtype": ...}`` with
    ``permission_question`` (``tool``, ``input``, ``question``), ``permission_answer``
    (``decision``, ``by``, ``reason``; a denial carries a ``message`` sentence) and
    ``user_message`` (a steer's ``text``).

    :param run: the run's record (:class:`kimi_acp.store.RunRecord`).
    :param event: the parsed event (see :mod:`kimi_acp.harness.claude_code`), or one of the
        dicts above; parsed from a line that is already masked: the run's key and every
        secret-named variable of its environment read as ``sk-kimi-…abcd``.
    :return: nothing; keep it fast, it runs on the supervisor's loop.
    """


@hookspec
def kimi_acp_run_finished(run: Any, result: Any) -> Any:
    """Report a finished run.

    Called once per run after its result is committed to the store (so it is never lost),
    for every terminal status (``ok``, ``error``, ``timeout``, ``cancelled``, ``lost``,
    ``rate_limited``). Reporters (the CLI printer, the OpenClaw gateway reporter) implement it.

    :param run: the run's record (:class:`kimi_acp.store.RunRecord`).
    :param result: the :class:`kimi_acp.report.RunResult`.
    :return: nothing; the return value is ignored. A hook that raises is reported on stderr and
        does not affect the run or the other hooks' callers. (The OpenClaw gateway delivery is not
        a hook: it is queued in the store's outbox in the same transaction as the result, so a
        crash can never separate the two, and retried until delivered.)
    """


@hookspec
def kimi_acp_model_switched(session_key: str, model_ref: Any) -> None:
    """Observe a session's model choice.

    Called after ``kimi-acp model REF --session KEY`` (or the ACP door's model selection)
    stores a session's choice.

    :param session_key: the requester session key, e.g. ``agent:main:main``.
    :param model_ref: the model ref stored (``kimi/kimi-k2.5``), or ``None`` when cleared.
    :return: nothing.
    """

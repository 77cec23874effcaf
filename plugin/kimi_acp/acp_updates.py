"""A run's stream-json events as ACP session updates (both doors use them).

:class:`RunEvents` routes a watched run's events (the ``kimi_acp_run_event`` hook) to its
prompt's queue; :class:`UpdateMaker` turns each into ``agent_message_chunk`` /
``agent_thought_chunk`` / ``tool_call`` / ``tool_call_update`` / ``usage_update``. The events
are parsed from lines already masked at the source (:mod:`.spawn`): nothing here sees a key.
"""

from __future__ import annotations

from typing import Any

from .harness.tools import TOOL_KINDS, tool_title
from .hookspecs import hookimpl

_DEFAULT_CONTEXT = 200_000


class RunEvents:
    """The pluggy plugin that routes a watched run's events to its prompt's queue.

    ``kimi_acp_run_event`` is synchronous and runs on the event loop: it only enqueues;
    the prompt's sender task turns events into ``session/update``s, in order.
    """

    def __init__(self) -> None:
        self.watched: dict[str, Any] = {}

    def watch(self, run_id: str, queue: Any) -> None:
        self.watched[run_id] = queue

    def unwatch(self, run_id: str) -> None:
        self.watched.pop(run_id, None)

    @hookimpl
    def kimi_acp_run_event(self, run: Any, event: Any) -> None:
        queue = self.watched.get(getattr(run, "run_id", None))  # type: ignore[arg-type]
        if queue is not None:
            queue.put_nowait(event)


class UpdateMaker:
    """Turns one run's stream-json events into ACP session updates."""

    def __init__(self, acp: Any, context_window: int | None, *, notes: list[str] | None = None) -> None:
        self.acp = acp
        self.context_window = context_window or _DEFAULT_CONTEXT
        self.context_used: int | None = None
        # kimi-acp's own words for the session (it moved, its backend changed): said before the
        # run's first output, never alone (a turn that fails before any output can still fail over)
        self.notes = notes if notes is not None else []

    def _said(self, text: str) -> Any:
        return self.acp.update_agent_message_text(f"[kimi-acp] {text}\n\n")

    def updates(self, event: Any) -> list[Any]:
        out = self._updates(event)
        if out and self.notes:
            out = [self._said(note) for note in self.notes] + out
            self.notes.clear()
        return out

    def _updates(self, event: Any) -> list[Any]:
        if isinstance(event, dict) and event.get("type") == "kimi-acp":
            # kimi-acp's own events (a stream line cut at the size limit...): said in the stream
            message = event.get("message")
            return [self._said(str(message))] if message else []
        from .harness.claude_code import (
            AssistantEvent,
            ResultEvent,
            TextBlock,
            ThinkingBlock,
            ToolUseBlock,
            UserEvent,
        )

        acp = self.acp
        out: list[Any] = []
        if isinstance(event, AssistantEvent):
            if event.synthetic:  # an API error: it comes back as the prompt's error
                return out
            usage = event.message.usage
            if usage is not None and event.parent_tool_use_id is None:
                self.context_used = (
                    usage.input_tokens + usage.cache_read_input_tokens + usage.cache_creation_input_tokens + usage.output_tokens
                )
            main = event.parent_tool_use_id is None
            for block in event.message.content:
                if isinstance(block, TextBlock) and block.text:
                    out.append(acp.update_agent_message_text(block.text) if main else acp.update_agent_thought_text(block.text))
                elif isinstance(block, ThinkingBlock) and block.thinking:
                    out.append(acp.update_agent_thought_text(block.thinking))
                elif isinstance(block, ToolUseBlock) and block.id:
                    path = block.input.get("file_path") or block.input.get("notebook_path")
                    locations = [acp.schema.ToolCallLocation(path=str(path))] if isinstance(path, str) and path else None
                    out.append(
                        acp.start_tool_call(
                            block.id,
                            tool_title(block.name, block.input),
                            kind=TOOL_KINDS.get(block.name, "other"),
                            status="in_progress",
                            locations=locations,
                            raw_input=block.input,
                        )
                    )
        elif isinstance(event, UserEvent):
            for result in event.tool_results:
                if not result.tool_use_id:
                    continue
                text = result.text
                raw = event.tool_use_result if isinstance(event.tool_use_result, dict) else {"output": text}
                out.append(
                    acp.update_tool_call(
                        result.tool_use_id,
                        status="failed" if result.is_error else "completed",
                        content=[acp.tool_content(acp.text_block(text))] if text else None,
                        raw_output=raw,
                    )
                )
        elif isinstance(event, ResultEvent):
            size = self.context_window
            for info in event.modelUsage.values():
                window = info.get("contextWindow") if isinstance(info, dict) else None
                if isinstance(window, int) and window > 0:
                    size = window
            if self.context_used is not None:
                out.append(acp.schema.UsageUpdate(session_update="usage_update", used=self.context_used, size=size))
        return out


def prompt_usage(acp: Any, usage: dict[str, Any]) -> Any:
    """The run's token counts as the prompt response's ``usage`` (None when unknown)."""

    def count(key: str) -> int:
        value = usage.get(key)
        return value if isinstance(value, int) and value >= 0 else 0

    fresh, out = count("input_tokens"), count("output_tokens")
    read, write = count("cache_read_input_tokens"), count("cache_creation_input_tokens")
    if not (fresh or out or read or write):
        return None
    return acp.schema.Usage(
        total_tokens=fresh + out + read + write,
        input_tokens=fresh,
        output_tokens=out,
        cached_read_tokens=read,
        cached_write_tokens=write,
    )


def prompt_images(blocks: list[Any]) -> list[tuple[str, str]]:
    """The images of an ACP prompt, as ``(media type, base64 data)``: they reach Claude Code as
    image blocks of the same user message (a URI-only image has no data to send: skipped)."""
    out = []
    for block in blocks:
        if getattr(block, "type", None) == "image" and getattr(block, "data", None):
            out.append((str(getattr(block, "mime_type", "") or ""), str(block.data)))
    return out


def prompt_text(blocks: list[Any]) -> str:
    """The task text of an ACP prompt: its text blocks, plus resource links and embedded text
    resources written out (images go separately, :func:`prompt_images`; audio is dropped)."""
    parts: list[str] = []
    for block in blocks:
        kind = getattr(block, "type", None)
        if kind == "text":
            parts.append(block.text)
        elif kind == "resource_link":
            parts.append(f"[{block.name}]({block.uri})")
        elif kind == "resource":
            resource = block.resource
            text = getattr(resource, "text", None)
            if isinstance(text, str):
                parts.append(f"<resource uri={resource.uri!r}>\n{text}\n</resource>")
    return "\n".join(p for p in parts if p)


def context_window(cfg: Any, backend_name: Any, model: Any) -> int | None:
    backend = cfg.backends.get(backend_name) if isinstance(backend_name, str) else None
    if backend is None:
        return None
    info = backend.model_info(model if isinstance(model, str) else None)
    return (info.context_window if info else None) or backend.context_window


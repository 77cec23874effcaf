"""Claude Code's tools, as kimi-acp shows them: an ACP tool kind and a short title.

Used by every door that shows a tool call (the ACP and OpenClaw streams, ``kimi-acp spawn``'s
progress). The input is already masked (the run's stream is redacted at the source).
"""

from __future__ import annotations

from typing import Any

TOOL_KINDS = {
    "Bash": "execute", "BashOutput": "execute", "KillShell": "execute",
    "Read": "read", "NotebookRead": "read",
    "Write": "edit", "Edit": "edit", "MultiEdit": "edit", "NotebookEdit": "edit",
    "Glob": "search", "Grep": "search", "LS": "search", "ToolSearch": "search",
    "WebFetch": "fetch", "WebSearch": "fetch",
    "Agent": "think", "Task": "think", "TodoWrite": "think",
}
"""Claude Code tool name -> ACP ``ToolKind`` (anything else is ``other``)."""


def tool_title(name: str, tool_input: dict[str, Any]) -> str:
    """A short title for a tool call, like claude-agent-acp shows them."""
    if name == "Bash":
        return str(tool_input.get("command") or tool_input.get("description") or "Terminal")[:200]
    path = tool_input.get("file_path") or tool_input.get("notebook_path") or tool_input.get("path")
    if path:
        return f"{name} {path}"
    for key in ("pattern", "url", "query", "description"):
        if tool_input.get(key):
            return f"{name} {str(tool_input[key])[:200]}"
    return name or "tool"

"""``kimi-acp install``: wire kimi-acp into the user's ``openclaw.json``, keeping its comments.

What it adds (each only when missing; values it owns are updated in place):

- the Kimi provider ``models.providers.kimi`` in OpenClaw's schema (Anthropic Messages API,
  ``${KIMI_API_KEY}``, today's Kimi Code models with their windows, output limits and K3's
  prices) — unless the user has a Kimi provider already (``kimi``, ``kimi-code`` or
  ``kimi-coding``: kept, no second one), or OpenClaw's own Kimi plugin (``@openclaw/kimi-provider``,
  id ``kimi``) is installed, which serves that provider itself;
- the ``/model`` aliases ``agents.defaults.models["kimi/kimi-for-coding"] = {alias: "Kimi"}`` and
  ``["kimi/k3"] = {alias: "Kimi K3"}``, and, on a config with neither ``modelPolicy`` nor a models
  map, ``agents.defaults.modelPolicy: {}``: without it OpenClaw 2026.9 reads the keys of that map
  as the legacy ``/model`` allowlist, and the aliases would narrow ``/model`` to themselves;
- it never disables or shadows OpenClaw's own plugins (``kimi``, ``moonshot``): a gateway that
  needs one installs it once (online). ``--no-plugin-lookups``, for a gateway without internet
  only, sets ``plugins.entries.kimi`` / ``.moonshot`` ``enabled: false`` (when not configured)
  so it stops looking them up at every start; that turns those providers off too;
- a re-install migrates what older installs wrote and this one does not (only what the record
  says they created): the provider ``kimi-code`` with K2.5 and its alias, and the ``enabled:
  false`` entries for OpenClaw's Kimi and Moonshot plugins;
- the ACP target agent ``agents.entries["kimi-acp"]`` (``runtime: {type: "acp", acp: {agent:
  "kimi-acp", backend: "kimi-acp"}}``), with ``main: {}`` beside it when there was no roster,
  and ``agents.ownership: "explicit"`` when OpenClaw needs it;
- ``agents.entries.claude`` (``runtime: {type: "acp", acp: {agent: "claude", backend:
  "kimi-acp"}}``) when kimi-acp is the gateway's ACP backend and the roster has no ``claude``:
  ``/acp spawn claude`` then opens a session that messages reach (OpenClaw dispatches a message
  into an ACP session only when its agent is on the roster);
- ``acp.backend: "kimi-acp"`` when no ACP backend is configured and the user has no acpx; with
  the user's acpx, the acpx alias ``plugins.entries.acpx.config.agents["kimi-acp"]`` (command:
  this installation's ``kimi-acp acp``) instead; an acpx entry an older install wrote is removed;
- ``"kimi-acp"`` in ``acp.allowedAgents`` — only when that list already names agents: an absent
  or empty list allows every harness, and creating it would forbid all the others;
- ``"kimi-acp"`` in ``plugins.allow`` — likewise only when that allowlist is in use;
- the OpenClaw extension: its folder in ``plugins.load.paths`` and ``plugins.entries.kimi-acp``
  (``enabled: true``), and our ``config.extension.command``: the ``kimi-acp`` program it runs;
- ``--global``: ``acp.defaultAgent: "kimi-acp"`` and our ``config.defaultBackend``;
- ``--agent ID`` (repeatable): our ``config.agents.<ID>.backend``.

The file is edited as text, at positions found by the round-trip JSON5 parser ``json-five``:
comments, key order, quoting and indentation of everything else stay byte for byte. New keys
follow the file's style (unquoted keys and trailing commas when the file uses them).

Before writing it copies the file to ``openclaw.json.bak-<timestamp>`` (mode kept), and it
records what it added in ``<state dir>/install.json``: the keys it created, the objects it
created to hold them, the list items it appended, and the previous value of any setting it
changed (no secrets: only kimi-acp's own settings and paths are ever recorded).
``--uninstall`` undoes exactly that: it removes the keys it created (even if you edited their
values since; the backup keeps them), restores the settings it changed when they still hold
the value it set, removes the list items it appended, and drops the objects and lists it
created once they are empty. Comments you had before survive both ways.

Running it twice changes nothing the second time ("already installed; nothing to change").
``--dry-run`` prints a unified diff and writes nothing.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import PLUGIN_ID, default_config_path, parse_json5
from .errors import ConfigError, KimiAcpError

Path_ = tuple[str, ...]

RECORD_FILE = "install.json"
ACP_ALIAS = "kimi-acp"
PROVIDER_ID = "kimi"  # the seed's id, and OpenClaw's: its Kimi plugin's provider (kimi-code, kimi-coding alias it)
KIMI_PROVIDER_IDS = ("kimi", "kimi-code", "kimi-coding")
OFFICIAL_PLUGINS = ("kimi", "moonshot")  # OpenClaw's own: never disabled unless --no-plugin-lookups asks
BACKEND_ID = "kimi-acp"  # the ACP runtime backend the extension registers
AGENT_ENTRY = {"runtime": {"type": "acp", "acp": {"agent": ACP_ALIAS, "backend": BACKEND_ID}}}
CLAUDE_AGENT = "claude"  # the harness id users type: /acp spawn claude
CLAUDE_ENTRY = {"runtime": {"type": "acp", "acp": {"agent": CLAUDE_AGENT, "backend": BACKEND_ID}}}
_K3_COST = {"input": 3, "output": 15, "cacheRead": 0.3, "cacheWrite": 0}
PROVIDER = {
    "baseUrl": "https://api.kimi.com/coding",
    "apiKey": "${KIMI_API_KEY}",
    "api": "anthropic-messages",
    # Today's Kimi Code lineup. k3's window is what every plan has; a plan with 1M: set 1048576.
    # No cost on the membership ids: they run on the plan's quota.
    "models": [
        {"id": "kimi-for-coding", "name": "Kimi Code", "reasoning": True, "input": ["text", "image"],
         "contextWindow": 262144, "maxTokens": 32768},
        {"id": "kimi-for-coding-highspeed", "name": "Kimi Code HighSpeed", "reasoning": True, "input": ["text", "image"],
         "contextWindow": 262144, "maxTokens": 32768},
        {"id": "k3", "name": "Kimi K3", "reasoning": True, "input": ["text", "image"],
         "contextWindow": 262144, "maxTokens": 131072, "cost": _K3_COST},
        {"id": "k3-256k", "name": "Kimi K3 (256k)", "reasoning": True, "input": ["text", "image"],
         "contextWindow": 262144, "maxTokens": 131072, "cost": _K3_COST},
    ],
}
MODEL_REF = f"{PROVIDER_ID}/kimi-for-coding"
ALIASES = {MODEL_REF: "Kimi", f"{PROVIDER_ID}/k3": "Kimi K3"}
"""The ``/model`` aliases install adds to ``agents.defaults.models`` (OpenClaw's own example:
``"kimi/kimi-for-coding": {alias: "Kimi"}``)."""
MODEL_POLICY = ("agents", "defaults", "modelPolicy")
# What installs before this one wrote: the provider `kimi-code` (with K2.5), its alias, and
# `enabled: false` for OpenClaw's Kimi and Moonshot plugins. A re-install migrates them away.
OLD_PROVIDER_ID = "kimi-code"
OLD_PROVIDER = {
    "baseUrl": "https://api.kimi.com/coding",
    "apiKey": "${KIMI_API_KEY}",
    "api": "anthropic-messages",
    "models": [{"id": "kimi-k2.5", "name": "Kimi K2.5", "contextWindow": 262144, "maxTokens": 32768}],
}
OLD_ALIAS = ("agents", "defaults", "models", "kimi-code/kimi-k2.5")

_IDENT = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")


# --------------------------------------------------------------------------- JSON5 text editing


def _dotted(path: Iterable[str]) -> str:
    return ".".join(p if _IDENT.match(p) or p.replace("-", "").isalnum() else json.dumps(p) for p in path)


@dataclass(frozen=True)
class _Style:
    unit: str = "  "
    bare_keys: bool = False  # unquoted keys where they are identifiers (the file uses them)
    trailing: bool = False  # trailing commas in new multi-line objects (the file uses them)


class Json5Doc:
    """A JSON5 document edited as text at positions from json-five's model.

    Every edit re-parses the text, so positions are always fresh; files are small.
    """

    def __init__(self, text: str, path: Path | str = "openclaw.json") -> None:
        self.path = path
        self.text = text if text.strip() else "{}\n"
        self._parse()

    # -- parsing and lookup
    def _parse(self) -> None:
        from json5.loader import ModelLoader, loads
        from json5.model import JSONObject

        data = parse_json5(self.text, self.path)  # precise line:col on syntax errors
        if not isinstance(data, dict):
            raise ConfigError(f"{self.path}:1:1: the top level must be an object, not {type(data).__name__}")
        self.data: dict[str, Any] = data
        try:
            model = loads(self.text, loader=ModelLoader())
        except Exception as exc:  # json-five raises several types; any of them means "cannot edit"
            raise ConfigError(f"{self.path}: cannot edit this JSON5 file safely: {exc}") from None
        root = model.value
        if not isinstance(root, JSONObject):
            raise ConfigError(f"{self.path}:1:1: the top level must be an object")
        self.root = root

    def _reparse(self, text: str) -> None:
        self.text = text
        self._parse()

    @staticmethod
    def _key_name(key: Any) -> str:
        from json5.model import Identifier

        return key.name if isinstance(key, Identifier) else key.characters

    def _member(self, obj: Any, name: str) -> tuple[int, Any, Any] | None:
        found = None
        for i, (k, v) in enumerate(obj.key_value_pairs):
            if self._key_name(k) == name:
                found = (i, k, v)  # the last one wins, as in every JSON5 reader
        return found

    def node(self, path: Path_) -> Any:
        from json5.model import JSONObject

        cur = self.root
        for part in path:
            if not isinstance(cur, JSONObject):
                return None
            m = self._member(cur, part)
            if m is None:
                return None
            cur = m[2]
        return cur

    def get(self, path: Path_, default: Any = None) -> Any:
        cur: Any = self.data
        for part in path:
            if not isinstance(cur, dict) or part not in cur:
                return default
            cur = cur[part]
        return cur

    def has(self, path: Path_) -> bool:
        sentinel = object()
        return self.get(path, sentinel) is not sentinel

    # -- positions
    @staticmethod
    def _start(node: Any) -> int:
        return node._tok.index

    @classmethod
    def _end(cls, node: Any) -> int:
        from json5.model import UnaryOp

        if isinstance(node, UnaryOp):
            return cls._end(node.value)
        tok = node._end_tok or node._tok
        return tok.end

    def _skip(self, pos: int) -> int:
        """Index of the next character that is not whitespace or inside a comment."""
        t = self.text
        while pos < len(t):
            if t[pos].isspace() or t[pos] == "\ufeff":
                pos += 1
            elif t.startswith("//", pos):
                nl = t.find("\n", pos)
                pos = len(t) if nl < 0 else nl + 1
            elif t.startswith("/*", pos):
                end = t.find("*/", pos + 2)
                pos = len(t) if end < 0 else end + 2
            else:
                break
        return pos

    def _line_start(self, pos: int) -> int:
        return self.text.rfind("\n", 0, pos) + 1

    def _line_end(self, pos: int) -> int:
        """Index just past the newline ending the line at ``pos`` (or the text's end)."""
        nl = self.text.find("\n", pos)
        return len(self.text) if nl < 0 else nl + 1

    def _indent_of(self, pos: int) -> str:
        ls = self._line_start(pos)
        m = re.match(r"[ \t]*", self.text[ls:pos])
        return m.group(0) if m else ""

    _LEAD = re.compile(r"""\s*(?:(?:"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[\w$]+)\s*:\s*)?""")
    _TAIL = re.compile(r"\s*,?\s*(?://.*|/\*.*)?\s*")

    def _owns_lines(self, open_i: int, close_i: int) -> bool:
        """A container that is alone on its line(s): only its key before it, only a comma or comment after."""
        lead = self.text[self._line_start(open_i) : open_i]
        tail = self.text[close_i + 1 : self._line_end(close_i)]
        return bool(self._LEAD.fullmatch(lead) and self._TAIL.fullmatch(tail))

    def _alone_before(self, pos: int) -> bool:
        """Only whitespace between the start of ``pos``'s line and ``pos``."""
        return self.text[self._line_start(pos) : pos].strip() == ""

    def _alone_after(self, pos: int) -> bool:
        """Only whitespace between ``pos`` and the end of its line."""
        return self.text[pos : self._line_end(pos)].strip() == ""

    # -- style
    def style(self) -> _Style:
        from json5.model import Identifier, JSONArray, JSONObject, walk

        unit = None
        bare = False
        trailing = False
        for node in walk(self.root):
            if isinstance(node, JSONObject):
                if node.trailing_comma is not None:
                    trailing = True
                for k in node.keys:
                    if isinstance(k, Identifier):
                        bare = True
            elif isinstance(node, JSONArray) and node.trailing_comma is not None:
                trailing = True
        for k in self.root.keys:
            start = self._start(k)
            if self._alone_before(start):
                ind = self._indent_of(start)
                if ind:
                    unit = ind
                    break
        return _Style(unit=unit or "  ", bare_keys=bare, trailing=trailing)

    # -- rendering new text
    def _key(self, name: str, style: _Style) -> str:
        return name if style.bare_keys and _IDENT.match(name) else json.dumps(name, ensure_ascii=False)

    def render(self, value: Any, indent: str, style: _Style, inline: bool = False) -> str:
        if isinstance(value, dict):
            if not value:
                return "{}"
            if inline:
                return "{ " + ", ".join(f"{self._key(k, style)}: {self.render(v, indent, style, True)}" for k, v in value.items()) + " }"
            inner = indent + style.unit
            members = [f"{inner}{self._key(k, style)}: {self.render(v, inner, style)}" for k, v in value.items()]
            return "{\n" + ",\n".join(members) + (",\n" if style.trailing else "\n") + indent + "}"
        if isinstance(value, list):
            if not value:
                return "[]"
            if inline or not any(isinstance(v, (dict, list)) for v in value):
                return "[" + ", ".join(self.render(v, indent, style, True) for v in value) + "]"
            inner = indent + style.unit
            items = [inner + self.render(v, inner, style) for v in value]
            return "[\n" + ",\n".join(items) + (",\n" if style.trailing else "\n") + indent + "]"
        return json.dumps(value, ensure_ascii=False)

    # -- edits
    def _splice(self, edits: list[tuple[int, int, str]]) -> None:
        text = self.text
        for start, end, new in sorted(edits, key=lambda e: e[0], reverse=True):
            text = text[:start] + new + text[end:]
        self._reparse(text)

    def _container(self, node: Any) -> tuple[int, int]:
        """Indices of a container's opening and closing bracket."""
        return node._tok.index, node._end_tok.index

    def _member_indent(self, obj: Any, base: str, style: _Style) -> str:
        from json5.model import JSONObject

        items = obj.keys if isinstance(obj, JSONObject) else obj.values
        for item in items:
            pos = self._start(item)
            if self._alone_before(pos):
                return self._indent_of(pos)
        return base + style.unit

    def _insert(self, container: Any, member_text: Any, style: _Style) -> None:
        """Append a member (``member_text(indent, inline) -> str``) to an object or array."""
        members = container.values
        open_i, close_i = self._container(container)
        base = self._indent_of(open_i)
        has_trailing = container.trailing_comma is not None
        if not members:
            inner = self.text[open_i + 1 : close_i]
            ind = base + style.unit
            tc = "," if style.trailing else ""
            if inner.strip() == "" and not self._owns_lines(open_i, close_i):
                # an empty {} or [] in the middle of a line: stay on that line
                new = member_text(base, True)
                self._splice([(open_i + 1, close_i, f" {new} " if self.text[open_i] == "{" else new)])
            elif inner.strip() == "":
                self._splice([(open_i + 1, close_i, "\n" + ind + member_text(ind, False) + tc + "\n" + base)])
            elif self._alone_before(close_i):
                ls = self._line_start(close_i)
                self._splice([(ls, ls, ind + member_text(ind, False) + tc + "\n")])
            else:
                self._splice([(close_i, close_i, "\n" + ind + member_text(ind, False) + tc + "\n" + base)])
            return
        last = members[-1]
        last_end = self._end(last)
        if self._alone_before(close_i):
            ind = self._member_indent(container, base, style)
            ls = self._line_start(close_i)
            if has_trailing:
                self._splice([(ls, ls, ind + member_text(ind, False) + ",\n")])
            else:
                self._splice([(last_end, last_end, ","), (ls, ls, ind + member_text(ind, False) + "\n")])
        else:
            if has_trailing:
                tc_end = container.trailing_comma._tok.end
                self._splice([(tc_end, tc_end, " " + member_text(base, True) + ",")])
            else:
                self._splice([(last_end, last_end, ", " + member_text(base, True))])

    def add_key(self, path: Path_, value: Any) -> list[Path_]:
        """Add ``path`` (which must not exist) with ``value``, creating missing objects on the way.

        Returns the paths of the objects it created to hold the key (outermost first).
        """
        from json5.model import JSONObject

        style = self.style()
        cur = self.root
        depth = 0
        for depth, part in enumerate(path[:-1]):
            m = self._member(cur, part)
            if m is None:
                break
            if not isinstance(m[2], JSONObject):
                raise ConfigError(
                    f"{self.path}: {_dotted(path[: depth + 1])} is not an object; fix it by hand, then run kimi-acp install again"
                )
            cur = m[2]
        else:
            depth = len(path) - 1
        if self._member(cur, path[depth]) is not None and depth == len(path) - 1:
            raise ConfigError(f"{self.path}: {_dotted(path)} exists already")
        rest = path[depth:]
        nested: Any = value
        for part in reversed(rest[1:]):
            nested = {part: nested}
        created = [tuple(path[: depth + 1 + i]) for i in range(len(rest) - 1)]

        def text(ind: str, inline: bool) -> str:
            return f"{self._key(rest[0], style)}: {self.render(nested, ind, style, inline)}"

        self._insert(cur, text, style)
        return created

    def replace_value(self, path: Path_, value: Any) -> None:
        node = self.node(path)
        if node is None:
            raise ConfigError(f"{self.path}: {_dotted(path)} not found")
        style = self.style()
        start = self._start(node)
        self._splice([(start, self._end(node), self.render(value, self._indent_of(start), style))])

    def append_item(self, path: Path_, item: Any) -> None:
        from json5.model import JSONArray

        node = self.node(path)
        if not isinstance(node, JSONArray):
            raise ConfigError(f"{self.path}: {_dotted(path)} is not a list")
        style = self.style()
        self._insert(node, lambda ind, inline: self.render(item, ind, style, inline), style)

    def _remove_member(self, container: Any, index: int, key: Any | None) -> None:
        """Remove member ``index`` (its key node for objects) and the comma that belongs to it."""
        members = container.values
        value = members[index]
        start = self._start(key if key is not None else value)
        end = self._end(value)
        after = self._skip(end)
        has_comma = self.text[after] == ","
        open_i, close_i = self._container(container)
        if len(members) == 1:
            rest = self.text[open_i + 1 : start] + self.text[after + (1 if has_comma else 0) : close_i]
            if not rest.strip():  # nothing else inside: back to an empty {} or []
                self._splice([(open_i + 1, close_i, "")])
                return
        if has_comma:
            cut_end = after + 1
            cut_start = start
            if self._alone_before(start) and self._alone_after(cut_end):
                cut_start, cut_end = self._line_start(start), self._line_end(cut_end)
            else:
                while cut_end < len(self.text) and self.text[cut_end] in " \t":
                    cut_end += 1
            self._splice([(cut_start, cut_end, "")])
            return
        if index == 0:  # the only member, with comments around it: keep them
            if self._alone_before(start) and self._alone_after(end):
                self._splice([(self._line_start(start), self._line_end(end), "")])
            else:
                self._splice([(start, end, "")])
            return
        # the last member, without a trailing comma: drop the comma after the previous member
        prev_end = self._end(members[index - 1])
        comma = self._skip(prev_end)
        if self._alone_before(start) and self._alone_after(end):
            edits = [(self._line_start(start), self._line_end(end), "")]
            if self.text[comma] == ",":
                edits.append((comma, comma + 1, ""))
            self._splice(edits)
        else:
            self._splice([(prev_end, end, "")])

    def remove_key(self, path: Path_) -> bool:
        from json5.model import JSONObject

        parent = self.node(path[:-1]) if len(path) > 1 else self.root
        if not isinstance(parent, JSONObject):
            return False
        m = self._member(parent, path[-1])
        if m is None:
            return False
        self._remove_member(parent, m[0], m[1])
        return True

    def remove_item(self, path: Path_, item: Any) -> bool:
        from json5.loader import DefaultLoader
        from json5.model import JSONArray

        node = self.node(path)
        if not isinstance(node, JSONArray):
            return False
        loader = DefaultLoader()
        for i, v in enumerate(node.values):
            if loader.load(v) == item:
                self._remove_member(node, i, None)
                return True
        return False


# --------------------------------------------------------------------------- the plan


@dataclass
class Record:
    """What one install added to one config file (kept in ``<state dir>/install.json``)."""

    created: list[Path_] = field(default_factory=list)
    containers: list[Path_] = field(default_factory=list)
    appended: list[tuple[Path_, Any]] = field(default_factory=list)
    replaced: list[tuple[Path_, Any, Any]] = field(default_factory=list)  # path, previous, ours
    files: list[str] = field(default_factory=list)
    created_file: bool = False
    no_plugin_lookups: bool = False  # the user asked for --no-plugin-lookups (its entries are theirs to keep)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Record:
        return cls(
            created=[tuple(p) for p in d.get("created", [])],
            containers=[tuple(p) for p in d.get("containers", [])],
            appended=[(tuple(a["path"]), a["item"]) for a in d.get("appended", [])],
            replaced=[(tuple(r["path"]), r["previous"], r["value"]) for r in d.get("replaced", [])],
            files=list(d.get("files", [])),
            created_file=bool(d.get("createdFile", False)),
            no_plugin_lookups=bool(d.get("noPluginLookups", False)),
        )

    def to_json(self) -> dict[str, Any]:
        out = {
            "created": [list(p) for p in self.created],
            "containers": [list(p) for p in self.containers],
            "appended": [{"path": list(p), "item": item} for p, item in self.appended],
            "replaced": [{"path": list(p), "previous": prev, "value": ours} for p, prev, ours in self.replaced],
            "files": self.files,
            "createdFile": self.created_file,
        }
        if self.no_plugin_lookups:
            out["noPluginLookups"] = True
        return out

    def forget(self, path: Path_) -> None:
        """Drop ``path`` (and what is inside it) from what this install created."""
        self.created = [c for c in self.created if c[: len(path)] != path]
        self.containers = [c for c in self.containers if c[: len(path)] != path]

    def owns(self, path: Path_) -> bool:
        """``path`` is (inside) a key this install created."""
        return any(path[: len(c)] == c for c in self.created)

    def empty(self) -> bool:
        return not (self.created or self.containers or self.appended or self.replaced or self.files or self.created_file)


def record_path(environ: Mapping[str, str] | None = None) -> Path:
    from .sessions import state_dir

    return state_dir(dict(os.environ if environ is None else environ)) / RECORD_FILE


def _load_records(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {"version": 1, "configs": {}}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise KimiAcpError(f"{path}: cannot read the install record: {exc}; move it away and run kimi-acp install again") from None
    if not isinstance(data, dict) or not isinstance(data.get("configs"), dict):
        raise KimiAcpError(f"{path}: not a kimi-acp install record; move it away and run kimi-acp install again")
    return data


def _save_records(path: Path, data: dict[str, Any]) -> None:
    from .sessions import ensure_state_dir

    if not data["configs"]:
        path.unlink(missing_ok=True)
        return
    ensure_state_dir(path.parent)
    _atomic_write(path, json.dumps(data, indent=2, sort_keys=False) + "\n", mode=0o600)


def kimi_acp_command() -> list[str]:
    """The argv prefix that runs this installation's ``kimi-acp``, absolute."""
    sibling = Path(sys.executable).absolute().parent / "kimi-acp"
    if sibling.is_file() and os.access(sibling, os.X_OK):
        return [str(sibling)]
    found = shutil.which("kimi-acp")
    if found:
        return [str(Path(found).absolute())]
    return [str(Path(sys.executable).absolute()), "-m", "kimi_acp.cli"]


@dataclass
class Options:
    agents: list[str] = field(default_factory=list)
    global_: bool = False
    backend: str = "kimi"
    ext_dir: Path | None = None
    command: list[str] | None = None
    no_plugin_lookups: bool = False  # turn OpenClaw's own kimi and moonshot plugins off (offline gateways)
    environ: Mapping[str, str] | None = None  # for finding OpenClaw's plugins (default: os.environ)


@dataclass
class Outcome:
    path: Path
    before: str  # "" when the file did not exist
    after: str
    changes: list[str]
    notes: list[str]
    record: Record
    remove_files: list[Path] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.before != self.after or bool(self.remove_files)


def _ext_dir(opts: Options) -> Path:
    if opts.ext_dir is not None:
        return opts.ext_dir
    from .openclaw_ext import extension_dir

    return extension_dir()


def plan_install(path: Path, opts: Options, record: Record) -> Outcome:
    """Compute the new text of ``path`` and the updated record; writes nothing."""
    exists = path.exists()
    before = path.read_text(encoding="utf-8") if exists else ""
    doc = Json5Doc(before, path)
    changes: list[str] = []
    notes: list[str] = []
    rec = Record(**{k: list(v) if isinstance(v, list) else v for k, v in record.__dict__.items()})
    if not exists:
        rec.created_file = True

    def ensure(p: Path_, value: Any, *, overwrite: bool) -> None:
        if not doc.has(p):
            created = doc.add_key(p, value)
            if not rec.owns(p):
                rec.created.append(p)
                rec.containers.extend(c for c in created if c not in rec.containers)
            changes.append(f"added {_dotted(p)}")
            return
        current = doc.get(p)
        if current == value:
            return
        if not overwrite:
            notes.append(f"kept your {_dotted(p)} as it is")
            return
        if not rec.owns(p) and not any(r[0] == p for r in rec.replaced):
            rec.replaced.append((p, current, value))
        else:
            rec.replaced = [(rp, prev, value if rp == p else ours) for rp, prev, ours in rec.replaced]
        doc.replace_value(p, value)
        changes.append(f"set {_dotted(p)} = {json.dumps(value)} (was {json.dumps(current)})")

    def append(p: Path_, item: Any, *, create: bool) -> None:
        current = doc.get(p)
        if current is None:
            if not create:
                return
            created = doc.add_key(p, [item])
            if not rec.owns(p):
                # the list counts as a container: uninstall removes our item, then the list once empty
                rec.containers.extend(c for c in [*created, p] if c not in rec.containers)
                if (p, item) not in rec.appended:
                    rec.appended.append((p, item))
            changes.append(f"added {_dotted(p)} with {json.dumps(item)}")
            return
        if not isinstance(current, list):
            raise ConfigError(f"{path}: {_dotted(p)} must be a list; fix it by hand, then run kimi-acp install again")
        if item in current:
            return
        if not current and not create:
            return
        doc.append_item(p, item)
        if not rec.owns(p) and (p, item) not in rec.appended:
            rec.appended.append((p, item))
        changes.append(f"added {json.dumps(item)} to {_dotted(p)}")

    cmd = opts.command or kimi_acp_command()
    ext = _ext_dir(opts)
    remove_files: list[Path] = []

    # 1. the Kimi provider and its /model aliases, in OpenClaw's own terms: provider `kimi` (the
    # seed's id, and the one OpenClaw's Kimi plugin serves), today's models with their limits
    # and prices. Never a second Kimi provider, never OpenClaw's plugins turned off.
    _migrate_older_install(doc, rec, opts, changes, notes, remove_key=_remove_recorded(doc, rec))
    providers = doc.get(("models", "providers"))
    providers = providers if isinstance(providers, dict) else {}
    theirs = [pid for pid in KIMI_PROVIDER_IDS if pid in providers and not rec.owns(("models", "providers", pid))]
    from . import official_plugins

    environ = os.environ if opts.environ is None else opts.environ
    kimi_plugin = official_plugins.state("kimi", doc.data, path, environ)
    if theirs:
        notes.append(f"kept your models.providers.{theirs[0]}: kimi-acp runs Kimi through it (no second Kimi provider added)")
    elif kimi_plugin.state == "installed":
        notes.append(f"OpenClaw's Kimi plugin is installed ({kimi_plugin.where}): it serves provider kimi, so only "
                     "what it lacks was added (the /model aliases)")
    else:
        ensure(("models", "providers", PROVIDER_ID), PROVIDER, overwrite=False)
    _guard_model_policy(doc, rec, ensure, notes)
    for ref, alias in ALIASES.items():
        taken = _alias_owner(doc, alias)
        if taken and taken != ref:
            notes.append(f'the alias "{alias}" is already {taken}\'s in agents.defaults.models; did not add it for {ref}')
            continue
        if not doc.has(("agents", "defaults", "models", ref)):
            ensure(("agents", "defaults", "models", ref), {"alias": alias}, overwrite=False)
    # Offline gateways only, on request: OpenClaw's own Kimi and Moonshot plugins off, so that a
    # gateway without internet stops looking for them at every start.
    if opts.no_plugin_lookups:
        rec.no_plugin_lookups = True
        for plugin in OFFICIAL_PLUGINS:
            if not doc.has(("plugins", "entries", plugin)):
                ensure(("plugins", "entries", plugin, "enabled"), False, overwrite=False)
            elif doc.get(("plugins", "entries", plugin, "enabled")) is not False:
                notes.append(f"--no-plugin-lookups: left your plugins.entries.{plugin} as it is (set its enabled to false yourself)")
        notes.append("--no-plugin-lookups: OpenClaw's own kimi and moonshot plugins are off on this gateway (its Kimi Coding "
                     "and Moonshot providers and Kimi web search too); kimi-acp install without the flag does not undo it, "
                     "kimi-acp install --uninstall does")
    # 2. the ACP target agent: spawns rewritten to agentId "kimi-acp" land here, served by
    # kimi-acp's ACP runtime backend (registered by the extension in the gateway).
    entries = doc.get(("agents", "entries"))
    if not isinstance(entries, dict) and not doc.has(("agents", "entries")) and not doc.has(("agents", "list")):
        # No roster yet: the gateway's implicit agent is `main`; keep it the default one.
        ensure(("agents", "entries", "main"), {}, overwrite=False)
    ensure(("agents", "entries", ACP_ALIAS), AGENT_ENTRY, overwrite=True)
    entries = doc.get(("agents", "entries"))
    if (
        isinstance(entries, dict)
        and len(entries) >= 2
        and not doc.has(("agents", "ownership"))
        and not any(isinstance(e, dict) and e.get("default") is True for e in entries.values())
    ):
        ensure(("agents", "ownership"), "explicit", overwrite=False)
    # 3. the ACP backend. With acpx (the user's own), acpx stays the gateway's backend
    # (other harnesses such as codex run there) and the acpx alias "kimi-acp" is kept as a
    # second door; without it, kimi-acp is the gateway's ACP backend.
    acpx = ("plugins", "entries", "acpx")
    alias_path = (*acpx, "config", "agents", ACP_ALIAS)
    ours = rec.owns(acpx) or acpx in rec.containers
    user_acpx = doc.has(acpx) and not ours
    if user_acpx:
        acp_cmd = " ".join(shlex.quote(a) for a in [*cmd, "acp"])
        ensure(alias_path, {"command": acp_cmd}, overwrite=True)
    else:
        if doc.has(acpx) and ours:
            # an older kimi-acp install wrote it; it only makes the gateway look for acpx on npm
            doc.remove_key(acpx)
            rec.created = [c for c in rec.created if c[: len(acpx)] != acpx]
            rec.containers = [c for c in rec.containers if c[: len(acpx)] != acpx]
            changes.append(f"removed {_dotted(acpx)} (written by an older kimi-acp install; acpx is not installed)")
        if not doc.has(("acp", "backend")):
            ensure(("acp", "backend"), BACKEND_ID, overwrite=False)
        if doc.get(("acp", "backend")) == BACKEND_ID and not doc.has(("agents", "entries", CLAUDE_AGENT)) and isinstance(doc.get(("agents", "entries")), dict):
            # `/acp spawn claude` opens agent:claude:acp:<uuid>; messages into it (chat.send, a bound
            # thread) only reach a session whose agent is on the roster: claude, on kimi-acp.
            ensure(("agents", "entries", CLAUDE_AGENT), CLAUDE_ENTRY, overwrite=False)
    backend_now = doc.get(("acp", "backend"))
    if isinstance(backend_now, str) and backend_now not in (BACKEND_ID, "acpx"):
        notes.append(f'acp.backend is "{backend_now}": the gateway sends every ACP turn there, kimi-acp\'s included; set it to "{BACKEND_ID}" or remove it')
    allowed = doc.get(("acp", "allowedAgents"))
    append(("acp", "allowedAgents"), ACP_ALIAS, create=False)
    if not allowed:
        notes.append("acp.allowedAgents is empty, which allows every ACP agent (kimi-acp included); left it so")
    # 4. the extension
    append(("plugins", "load", "paths"), str(ext), create=True)
    append(("plugins", "allow"), PLUGIN_ID, create=False)
    ensure(("plugins", "entries", PLUGIN_ID, "enabled"), True, overwrite=True)
    if PLUGIN_ID in (doc.get(("plugins", "deny")) or []):
        notes.append(f'plugins.deny lists "{PLUGIN_ID}": OpenClaw will not load the extension until you remove it')
    section = ("plugins", "entries", PLUGIN_ID, "config")
    # 5. routing
    if opts.global_:
        ensure(("acp", "defaultAgent"), ACP_ALIAS, overwrite=True)
        ensure((*section, "defaultBackend"), opts.backend, overwrite=True)
    for agent in opts.agents:
        ensure((*section, "agents", agent, "backend"), opts.backend, overwrite=True)

    # roster checks
    entries = doc.get(("agents", "entries"))
    if isinstance(entries, dict):
        for agent in opts.agents:
            if agent not in entries:
                notes.append(f"agent '{agent}' is not in agents.entries (kimi-acp routes its spawns by id anyway)")

    # which kimi-acp the extension runs: in our section (OpenClaw hands it to the extension as
    # its plugin config), not in a file next to the extension (site-packages may be read-only,
    # and pip uninstall would leave it)
    ensure((*section, "extension", "command"), cmd, overwrite=True)
    bpath = ext / "bridge.json"
    if str(bpath) in rec.files and bpath.exists():  # an older install wrote it there
        remove_files.append(bpath)
        rec.files = [f for f in rec.files if f != str(bpath)]
        changes.append(f"removed {bpath} (the command is in {_dotted((*section, 'extension', 'command'))} now)")

    after = doc.text
    _check(after, path)
    return Outcome(path=path, before=before, after=after, changes=changes, notes=notes, record=rec, remove_files=remove_files)


def _remove_recorded(doc: Json5Doc, rec: Record) -> Any:
    def remove(p: Path_) -> None:
        doc.remove_key(p)
        rec.forget(p)
        parent = p[:-1]
        while parent in rec.containers and doc.get(parent) == {}:  # holders this install made, now empty
            doc.remove_key(parent)
            rec.forget(parent)
            parent = parent[:-1]

    return remove


def _migrate_older_install(doc: Json5Doc, rec: Record, opts: Options, changes: list[str], notes: list[str],
                           *, remove_key: Any) -> None:
    """Undo what an older kimi-acp install wrote and this one does not (only what its record
    says it created, and only while it still holds what it wrote): the provider ``kimi-code``
    with K2.5 and its alias (the provider is ``kimi`` now), and ``enabled: false`` for
    OpenClaw's own Kimi and Moonshot plugins (unless the user asked for that with
    ``--no-plugin-lookups``)."""
    old = ("models", "providers", OLD_PROVIDER_ID)
    if old in rec.created and doc.has(old):
        if doc.get(old) == OLD_PROVIDER:
            remove_key(old)
            changes.append(f"removed {_dotted(old)} (an older kimi-acp install wrote it; the Kimi provider is now "
                           f"{PROVIDER_ID}, OpenClaw's own id; sessions that chose kimi-code/kimi-k2.5 with /model: "
                           f"choose {MODEL_REF})")
        else:
            rec.forget(old)
            notes.append(f"kept {_dotted(old)}: an older kimi-acp install wrote it, but it was changed since; "
                         f"remove it yourself if models.providers.{PROVIDER_ID} replaces it")
    if OLD_ALIAS in rec.created and doc.has(OLD_ALIAS):
        remove_key(OLD_ALIAS)
        changes.append(f"removed {_dotted(OLD_ALIAS)} (an older kimi-acp install's alias; now {MODEL_REF})")
    if rec.no_plugin_lookups or opts.no_plugin_lookups:
        return
    for plugin in OFFICIAL_PLUGINS:
        key = ("plugins", "entries", plugin, "enabled")
        if key in rec.created and doc.get(key) is False:
            remove_key(key)
            changes.append(f"removed {_dotted(key)} = false (an older kimi-acp install wrote it; it turned off OpenClaw's "
                           f"own {plugin} plugin for the whole gateway)")


def _guard_model_policy(doc: Json5Doc, rec: Record, ensure: Any, notes: list[str]) -> None:
    """Keep what ``/model`` may choose as it was.

    In OpenClaw 2026.9, without ``agents.defaults.modelPolicy`` (and before its migration
    marker ``meta.migrations.modelPolicyAllowlist``), the keys of ``agents.defaults.models`` are
    the legacy ``/model`` allowlist. A config with no such map allows any model: adding one alias
    there would narrow it to that alias. So install first writes ``modelPolicy: {}`` (OpenClaw's
    own way to keep the policy open when aliases are added; ``/model`` still allows any model).
    An allowlist the user has (either kind) is theirs: install says what it means for ``kimi/…``."""
    policy = doc.get(MODEL_POLICY)
    models = doc.get(("agents", "defaults", "models"))
    migrated = doc.get(("meta", "migrations", "modelPolicyAllowlist")) is True
    listed = [k for k in models if k.strip()] if isinstance(models, dict) else []
    if isinstance(policy, dict):
        allow = policy.get("allow")
        if isinstance(allow, list) and allow and not any(
            isinstance(a, str) and (a.strip().lower().startswith(("kimi/", "kimi-code/", "kimi-coding/"))) for a in allow
        ):
            notes.append('agents.defaults.modelPolicy.allow does not list kimi models: /model kimi/k3 is refused until you '
                         'add "kimi/*" to it (left it as it is)')
        return
    if migrated:
        return
    if not listed:
        ensure(MODEL_POLICY, {}, overwrite=False)
        notes.append("added agents.defaults.modelPolicy: {} so that the aliases below do not become a /model allowlist "
                     "(without it OpenClaw treats the keys of agents.defaults.models as one); /model still allows any model")
        return
    if not any(k.lower().startswith("kimi/") for k in listed):
        notes.append("agents.defaults.models is your /model allowlist (no modelPolicy): the Kimi aliases added below are "
                     "allowed from now on; other kimi/* refs are not until you list them (or set modelPolicy.allow)")


def _alias_owner(doc: Json5Doc, alias: str) -> str | None:
    """The ref in ``agents.defaults.models`` that already has ``alias`` (case-insensitive), or None."""
    models = doc.get(("agents", "defaults", "models"))
    for ref, spec in (models.items() if isinstance(models, dict) else []):
        names = spec.get("alias") if isinstance(spec, dict) else None
        names = [names] if isinstance(names, str) else (names if isinstance(names, list) else [])
        if any(isinstance(n, str) and n.lower() == alias.lower() for n in names):
            return ref
    return None


def _check(text: str, path: Path) -> None:
    """The result must load with kimi-acp's own config loader (our section validates)."""
    from .config import load_config

    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / path.name
        probe.write_text(text, encoding="utf-8")
        try:
            load_config(probe, environ=dict(os.environ))
        except ConfigError as exc:
            raise type(exc)(str(exc).replace(str(probe), str(path))) from None


def plan_uninstall(path: Path, record: Record) -> Outcome:
    before = path.read_text(encoding="utf-8") if path.exists() else ""
    changes: list[str] = []
    notes: list[str] = []
    if not path.exists():
        return Outcome(path, before, before, changes, [f"{path} does not exist; nothing to remove"], Record(),
                       remove_files=[Path(f) for f in record.files if Path(f).exists()])
    doc = Json5Doc(before, path)
    for p, prev, ours in reversed(record.replaced):
        if doc.has(p) and doc.get(p) == ours:
            doc.replace_value(p, prev)
            changes.append(f"restored {_dotted(p)} = {json.dumps(prev)}")
        elif doc.has(p):
            notes.append(f"left {_dotted(p)} alone: changed since kimi-acp install set it")
    for p, item in reversed(record.appended):
        if doc.remove_item(p, item):
            changes.append(f"removed {json.dumps(item)} from {_dotted(p)}")
    for p in reversed(record.created):
        if p == MODEL_POLICY and _keeps_aliases_open(doc):
            notes.append("kept agents.defaults.modelPolicy: {}: without it your agents.defaults.models entries would become "
                         "a /model allowlist")
            continue
        if doc.remove_key(p):
            changes.append(f"removed {_dotted(p)}")
    for p in sorted(record.containers, key=len, reverse=True):
        value = doc.get(p)
        if value == {} or value == []:
            doc.remove_key(p)
            changes.append(f"removed {_dotted(p)} (empty)")
    after = doc.text
    remove = [Path(f) for f in record.files if Path(f).exists()]
    if record.created_file and not doc.data and re.sub(r"\s", "", after) == "{}":
        after = ""  # kimi-acp created the file and nothing else is in it: remove it
        changes.append(f"removed {path} (kimi-acp created it)")
    changes.extend(f"removed {f}" for f in remove)
    return Outcome(path, before, after, changes, notes, Record(), remove_files=remove)


def _keeps_aliases_open(doc: Json5Doc) -> bool:
    """``modelPolicy: {}`` is what keeps ``agents.defaults.models`` from being an allowlist."""
    models = doc.get(("agents", "defaults", "models"))
    return (doc.get(MODEL_POLICY) == {} and isinstance(models, dict) and any(k.strip() for k in models)
            and doc.get(("meta", "migrations", "modelPolicyAllowlist")) is not True)


# --------------------------------------------------------------------------- files


def _atomic_write(path: Path, text: str, *, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def backup(path: Path) -> Path:
    """Copy ``path`` to ``<name>.bak-<timestamp>`` next to it (mode and times kept)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.bak-{stamp}")
    n = 1
    while target.exists():
        target = path.with_name(f"{path.name}.bak-{stamp}-{n}")
        n += 1
    shutil.copy2(path, target)
    return target


def diff(outcome: Outcome) -> str:
    a = outcome.before.splitlines(keepends=True)
    b = outcome.after.splitlines(keepends=True)
    src = str(outcome.path) if outcome.before else "/dev/null"
    lines = list(difflib.unified_diff(a, b, fromfile=src, tofile=str(outcome.path)))
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)


def apply(outcome: Outcome) -> Path | None:
    """Write the outcome: backup first, then the config (atomically); remove obsolete files."""
    backup_path = None
    if outcome.before and not outcome.after:  # uninstall of a file kimi-acp created
        backup_path = backup(outcome.path)
        outcome.path.unlink()
    elif outcome.before != outcome.after:
        if outcome.path.exists():
            backup_path = backup(outcome.path)
            mode = outcome.path.stat().st_mode & 0o7777
        else:
            mode = 0o600
        _atomic_write(outcome.path, outcome.after, mode=mode)
    for f in outcome.remove_files:
        f.unlink(missing_ok=True)
    return backup_path


# --------------------------------------------------------------------------- the command


def _say(lines: Iterable[str]) -> None:
    for line in lines:
        print(line)


def run(args: Any) -> int:
    path = Path(args.config).expanduser() if getattr(args, "config", None) else default_config_path()
    path = path.absolute()
    rpath = record_path()
    records = _load_records(rpath)
    key = str(path)
    record = Record.from_json(records["configs"].get(key, {}))

    if args.uninstall:
        if record.empty():
            print(f"kimi-acp is not installed in {path} (no record in {rpath}); nothing to change")
            return 0
        outcome = plan_uninstall(path, record)
    else:
        opts = Options(agents=list(args.agent or []), global_=bool(args.global_), backend=args.backend,
                       no_plugin_lookups=bool(getattr(args, "no_plugin_lookups", False)))
        outcome = plan_install(path, opts, record)

    if args.dry_run:
        text = diff(outcome)
        print(f"dry run: nothing written. {'Changes' if outcome.changed else 'No changes'} to {path}:")
        if text:
            sys.stdout.write(text)
        _say([f"  would: {c}" for c in outcome.changes] + [f"  note: {n}" for n in outcome.notes])
        return 0

    if not outcome.changed:
        if args.uninstall:
            print(f"nothing of kimi-acp's left in {path}; nothing to change")
            records["configs"].pop(key, None)
            _save_records(rpath, records)
        else:
            print(f"already installed; nothing to change ({path})")
            if record.to_json() != outcome.record.to_json():
                records["configs"][key] = outcome.record.to_json()
                _save_records(rpath, records)
        _say([f"  note: {n}" for n in outcome.notes])
        return 0

    # Record first (so an interrupted run can still be undone), then write.
    if args.uninstall:
        records["configs"].pop(key, None)
    else:
        records["configs"][key] = outcome.record.to_json()
    backup_path = apply(outcome)
    _save_records(rpath, records)

    verb = "uninstalled kimi-acp from" if args.uninstall else "installed kimi-acp in"
    print(f"{verb} {path}")
    _say([f"  {c}" for c in outcome.changes])
    if backup_path:
        print(f"backup: {backup_path}")
    elif outcome.before != outcome.after:
        print(f"created {path} (no backup: there was no file)")
    _say([f"  note: {n}" for n in outcome.notes])
    if rpath.exists():
        print(f"record: {rpath}")
    if args.uninstall:
        print("next: restart the OpenClaw gateway (openclaw gateway restart)")
        return 0
    print("next steps:")
    print("  1. export KIMI_API_KEY=<your Kimi key> where the OpenClaw gateway runs (or put it in ~/.openclaw/.env)")
    print("  2. restart the gateway: openclaw gateway restart")
    print('     (its log then says: kimi-acp: ACP runtime backend "kimi-acp" registered; an online gateway also')
    print("     installs OpenClaw's own Kimi plugin, @openclaw/kimi-provider, once; kimi-acp doctor says if it will)")
    agents = " ".join(f"--agent {a}" for a in (args.agent or []))
    print(f"  3. check: kimi-acp doctor {agents}".rstrip())
    return 0

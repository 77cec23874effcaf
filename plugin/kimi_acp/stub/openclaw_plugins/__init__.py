"""Local stand-ins for OpenClaw's own Kimi and Moonshot plugins, for gateways without internet.

A gateway whose config names provider ``kimi`` (what ``kimi-acp install`` writes), or whose
environment has ``KIMI_API_KEY``, needs OpenClaw's official ``@openclaw/kimi-provider`` (plugin
id ``kimi``; providers ``kimi``, ``kimi-code``, ``kimi-coding``) and ``@openclaw/moonshot-provider``
(plugin id ``moonshot``): online it installs them once, as a user would with ``openclaw plugins
install``; offline it would look them up (npm, ClawHub) at every start. The demo and the tests run
offline, so they load these two stand-ins the way an installed plugin is loaded
(``plugins.load.paths``): each has the official plugin's id and provider ids and registers no
runtime code. They are not for users: online, install the real ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
KIMI = HERE / "kimi"  # stands for @openclaw/kimi-provider
MOONSHOT = HERE / "moonshot"  # stands for @openclaw/moonshot-provider
STAND_INS = (KIMI, MOONSHOT)


def load_stand_ins(cfg: dict[str, Any]) -> dict[str, Any]:
    """Add the stand-ins' folders to ``plugins.load.paths`` of an ``openclaw.json`` (a dict)."""
    paths = cfg.setdefault("plugins", {}).setdefault("load", {}).setdefault("paths", [])
    for folder in STAND_INS:
        if str(folder) not in paths:
            paths.append(str(folder))
    return cfg

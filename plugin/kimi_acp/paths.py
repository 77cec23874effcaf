"""Where kimi-acp runs from: a source checkout, or an installed package."""

from __future__ import annotations

from pathlib import Path


def checkout_root(module_file: str | Path) -> Path | None:
    """The source checkout holding ``module_file`` (a dir with ``pyproject.toml`` and
    ``plugin/kimi_acp``), or None for an installed package (``…/site-packages/kimi_acp``),
    whose parents are Python's own dirs and must not be offered as places to look."""
    for parent in Path(module_file).resolve().parents:
        if (parent / "pyproject.toml").is_file() and (parent / "plugin" / "kimi_acp").is_dir():
            return parent
    return None

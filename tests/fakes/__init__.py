"""Fake programs that stand in for real harnesses in tests (run with ``sys.executable``)."""

from __future__ import annotations

import sys
from pathlib import Path

FAKE_HARNESS = Path(__file__).with_name("fake_harness.py")


def fake_argv(mode: str, *args: str) -> list[str]:
    """argv that runs the fake harness in ``mode`` (``-I -S``: fast start, no site)."""
    return [sys.executable, "-I", "-S", str(FAKE_HARNESS), "--mode", mode, *args]

"""Harnesses: what kimi-acp knows about the agent CLIs it supervises (today: Claude Code)."""

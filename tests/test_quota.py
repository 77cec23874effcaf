"""Kimi Code's plan quota (``GET <base>/v1/usages``): the parser on the shapes Kimi's public
clients read, the stub serving the same shape, the API other code builds on, and ``doctor``
showing the windows."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from kimi_acp.cli import main
from kimi_acp.config import load_config
from kimi_acp.default_plugins.kimi import PRESET as KIMI
from kimi_acp.plugins import build_plugin_manager, registered_backends, set_plugin_manager
from kimi_acp.quota import (
    QuotaShapeError,
    QuotaUnavailableError,
    fetch_quota,
    parse_usages,
    quota_url,
    quota_windows,
    usages_payload,
)
from kimi_acp.stub.server import StubServer

KEY = "sk-kimi-quota00000000000000000000000000q1q2"

# The shape claude-code-router's kimi-code-usages parser and OpenClaw's Kimi plugin read.
REAL_SHAPE = {
    "usage": {"limit": "100", "used": "37", "remaining": "63", "resetTime": "2026-12-07T16:00:00.000Z"},
    "limits": [
        {"window": {"duration": 300, "timeUnit": "TIME_UNIT_MINUTE"},
         "detail": {"limit": "100", "remaining": "10", "resetTime": "2026-12-03T15:00:00Z"}},
    ],
}


@pytest.fixture(autouse=True)
def fresh_pm():
    set_plugin_manager(build_plugin_manager(entrypoints=False))
    yield
    set_plugin_manager(None)


@pytest.fixture
def no_proxy(monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


def test_the_known_shape_gives_the_5h_and_weekly_windows_shortest_first():
    five, week = parse_usages(REAL_SHAPE)
    assert (five.name, five.minutes, five.limit, five.used, five.remaining) == ("5h", 300, 100, 90, 10)
    assert five.used_fraction == pytest.approx(0.9) and five.resets_at == "2026-12-03T15:00:00Z"
    assert (week.name, week.minutes, week.used_fraction) == ("weekly", 10080, pytest.approx(0.37))
    assert week.resets_at == "2026-12-07T16:00:00Z"
    assert five.describe() == "5h: 90% used (10 of 100 left), resets 2026-12-03T15:00:00Z"
    assert five.to_json()["usedFraction"] == pytest.approx(0.9)


def test_numbers_resets_and_units_in_their_other_spellings():
    windows = parse_usages({
        "limits": [
            {"duration": 5, "timeUnit": "TIME_UNIT_HOUR", "limit": 50, "used": 50, "reset_at": 1_796_000_000_000},
            {"window": {"duration": 1, "timeUnit": "TIME_UNIT_DAY"}, "detail": {"limit": 10, "used": 1, "reset_time": 1_796_000_000}},
        ],
    })
    assert [(w.name, w.minutes) for w in windows] == [("5h", 300), ("1d", 1440)]
    assert windows[0].exhausted and windows[0].remaining == 0
    assert windows[0].resets_at == windows[1].resets_at == "2026-11-30T00:53:20Z"  # ms and s epochs alike


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([], "not a JSON object"),
        ({"usages": {"limit_5h": {"used_ratio": 0.4}}}, "no 'usage' or 'limits'"),  # another client's shape: not guessed
        ({"usage": {"limit": 100}}, "neither used nor remaining"),
        ({"limits": {"a": 1}}, "'limits' is not a list"),
        ({"limits": ["x"]}, r"limits\[0\] is not an object"),
    ],
)
def test_an_unknown_shape_is_an_error_not_a_guess(payload, message):
    with pytest.raises(QuotaShapeError, match=message):
        parse_usages(payload)


def test_the_stub_serves_the_same_shape_with_a_bearer_key(no_proxy):
    with StubServer(key=KEY) as stub:
        backend = KIMI.merged(base_url=stub.base_url)
        assert quota_url(backend) == stub.base_url + "/v1/usages"
        five, week = fetch_quota(backend, KEY)
        assert (five.minutes, five.used, week.minutes, week.used) == (300, 40, 10080, 12)
        req = next(r for r in stub.requests if r.route.endswith("/v1/usages"))
        assert req.method == "GET" and req.headers["authorization"] == f"Bearer {KEY}"
        assert "x-api-key" not in req.headers
        with pytest.raises(QuotaUnavailableError, match="refused"):
            fetch_quota(backend, "sk-kimi-wrong000000000000000000000000000zz")
        stub.usages = usages_payload(weekly_used=100, five_hour_used=5)
        assert [w.exhausted for w in fetch_quota(backend, KEY)] == [False, True]
        stub.usages = {"something": "else"}
        with pytest.raises(QuotaShapeError):
            fetch_quota(backend, KEY)


def test_quota_windows_is_the_api_for_other_code(clean_env: Path, no_proxy):
    with StubServer(key=KEY) as stub:
        path = clean_env / "openclaw.json"
        path.write_text('{plugins: {entries: {"kimi-acp": {config: {backends: {kimi: {baseUrl: "%s"}}}}}}}' % stub.base_url)
        cfg = load_config(path, environ={"KIMI_API_KEY": KEY}, presets=registered_backends(build_plugin_manager(entrypoints=False)))
        assert cfg.backends["kimi"].base_url == stub.base_url  # loopback only
        windows = quota_windows(cfg, "kimi")
        assert [w.minutes for w in windows] == [300, 10080]
    with pytest.raises(QuotaUnavailableError, match="no quota endpoint"):
        quota_windows(cfg, "anthropic", environ={"ANTHROPIC_API_KEY": "sk-ant-x" * 3})
    with pytest.raises(QuotaUnavailableError, match="passthrough"):
        quota_windows(cfg, "passthrough")


def test_fetch_quota_names_no_secret_when_unreachable():
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("boom", request=request)

    with pytest.raises(QuotaUnavailableError) as err:
        fetch_quota(KIMI.merged(base_url="http://127.0.0.1:9/coding"), KEY, transport=httpx.MockTransport(refuse))
    assert KEY not in str(err.value) and "ConnectError" in str(err.value)


def test_doctor_shows_the_quota_windows(clean_env: Path, claude_bin: str, monkeypatch, capsys, no_proxy):
    with StubServer(key=KEY) as stub:
        (clean_env / "openclaw.json").write_text(
            '{plugins: {entries: {"kimi-acp": {config: {defaultBackend: "kimi", backends: {kimi: {baseUrl: "%s"}}}}}}}'
            % stub.base_url)
        monkeypatch.setenv("KIMI_ACP_CLAUDE", claude_bin)
        monkeypatch.setenv("KIMI_API_KEY", KEY)
        stub.usages = usages_payload(weekly_used=20, five_hour_used=100)
        assert main(["doctor", "--json", "--timeout", "10"]) == 0
        checks = [c for c in json.loads(capsys.readouterr().out)["checks"] if c["name"] == "quota"]
        assert len(checks) == 1 and checks[0]["ok"]
        assert "5h: 100% used (0 of 100 left)" in checks[0]["detail"] and "weekly: 20% used" in checks[0]["detail"]
        assert checks[0]["warning"] and "used up" in checks[0]["fix"]
        stub.usages = {"unknown": True}
        assert main(["doctor", "--timeout", "10"]) == 0  # an undocumented endpoint: a note, never a failure
        out = capsys.readouterr().out
        assert "! quota    kimi: quota not read: quota answer: no 'usage' or 'limits'" in out
        assert main(["doctor", "--offline", "--json"]) == 0
        assert not [c for c in json.loads(capsys.readouterr().out)["checks"] if c["name"] == "quota"]

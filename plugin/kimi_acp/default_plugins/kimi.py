"""The Kimi backend preset: today's Kimi Code lineup on Kimi's Anthropic-compatible endpoint
(``https://api.kimi.com/coding``), as OpenClaw's own Kimi provider (``@openclaw/kimi-provider``,
provider ids ``kimi``, ``kimi-code``, ``kimi-coding``) lists it:

============================  =========  ==========  ==========================================
model id                      context    max output  notes
============================  =========  ==========  ==========================================
``kimi-for-coding``           262,144    32,768      the default; the stable id (membership quota)
``kimi-for-coding-highspeed`` 262,144    32,768      may need a higher plan
``k3``                        262,144    131,072     1,048,576 on plans that have it: say so with
                                                     the provider model's ``contextWindow`` in
                                                     openclaw.json, or the ref ``kimi/k3[1m]``
``k3-256k``                   262,144    131,072     lower quota use
``kimi-k2.5``, ``kimi-k2.6``  262,144    32,768      legacy (the seed's ids): accepted, sent as is
============================  =========  ==========  ==========================================

``kimi-code`` and ``k2p5`` are legacy names of ``kimi-for-coding`` and are sent as that.
``kimi-k2.7-code`` is a Moonshot API model (``moonshot/…``, OpenAI-compatible
``api.moonshot.ai``), not a Kimi Code one: it is refused with what to use instead.

K3 thinks adaptively with effort low / high / max (see harness/command.py for how OpenClaw's
thinking levels map onto them); K3 is priced $3 input, $0.30 cached input and $15 output per
million tokens (the public catalogs, and OpenClaw's Kimi plugin); the other ids run on the
plan's quota and have no per-token price unless ``openclaw.json`` gives one. The lineup takes images
(text + image input, as OpenClaw's Kimi provider marks it); the legacy ids are not marked.

Works with only ``KIMI_API_KEY`` set and no provider in ``openclaw.json``.
"""

from __future__ import annotations

from ..backends import Backend, Cost, ModelInfo
from ..hookspecs import hookimpl

KIMI_BASE_URL = "https://api.kimi.com/coding"
KIMI_MODEL = "kimi-for-coding"
KIMI_CONTEXT = 262_144
K3_MAX_CONTEXT = 1_048_576
KIMI_PROVIDER_IDS = ("kimi", "kimi-code", "kimi-coding")
"""The provider ids of OpenClaw's own Kimi plugin (plugin id ``kimi``): all name this backend."""

K3_EFFORTS = ("low", "high", "max")
K3_COST = Cost(input=3.0, output=15.0, cache_read=0.30, cache_write=0.0)

LINEUP = (
    ModelInfo(id="kimi-for-coding", name="Kimi Code", context_window=KIMI_CONTEXT, max_tokens=32_768, images=True),
    ModelInfo(id="kimi-for-coding-highspeed", name="Kimi Code HighSpeed", context_window=KIMI_CONTEXT, max_tokens=32_768,
              images=True),
    ModelInfo(id="k3", name="Kimi K3", context_window=KIMI_CONTEXT, max_tokens=131_072, cost=K3_COST,
              efforts=K3_EFFORTS, max_context_window=K3_MAX_CONTEXT, images=True),
    ModelInfo(id="k3-256k", name="Kimi K3 (256k)", context_window=KIMI_CONTEXT, max_tokens=131_072, cost=K3_COST,
              efforts=K3_EFFORTS, images=True),
)
LEGACY = (
    ModelInfo(id="kimi-k2.5", name="Kimi K2.5", context_window=KIMI_CONTEXT, max_tokens=32_768, legacy=True),
    ModelInfo(id="kimi-k2.6", name="Kimi K2.6", context_window=KIMI_CONTEXT, max_tokens=32_768, legacy=True),
)
MODEL_ALIASES = {"kimi-code": "kimi-for-coding", "k2p5": "kimi-for-coding"}
_MOONSHOT = (
    "{id} is a Moonshot API model (moonshot/{id}: api.moonshot.ai, OpenAI-compatible), not a Kimi Code one; "
    "Claude Code on Kimi Code runs kimi/kimi-for-coding (the Kimi Code model) or kimi/k3"
)
FOREIGN_MODELS = {mid: _MOONSHOT.format(id=mid) for mid in ("kimi-k2.7-code", "kimi-k2.7-code-highspeed", "kimi-k3")}

MOONSHOT_REFUSAL = (
    "'{ref}' is a Moonshot API model (api.moonshot.ai, OpenAI-compatible, MOONSHOT_API_KEY), not Kimi Code: "
    "Claude Code cannot run on it; use kimi/k3 or kimi/kimi-for-coding (Kimi Code, KIMI_API_KEY) instead"
)
"""Why a ``moonshot/…`` ref names no backend (routing.py refuses it with this line)."""

PRESET = Backend(
    name="kimi",
    base_url=KIMI_BASE_URL,
    api_key_env=("KIMI_API_KEY", "KIMICODE_API_KEY"),
    model=KIMI_MODEL,
    models=(*LINEUP, *LEGACY),
    context_window=KIMI_CONTEXT,
    timeout_ms=600_000,
    auth_header="x-api-key",
    max_concurrent=2,
    # Kimi's documented fix for the ToolSearch -> tool_reference 400.
    quirks={"ENABLE_TOOL_SEARCH": "false"},
    sources=("preset kimi (kimi_acp.default_plugins.kimi)",),
    provider_aliases=KIMI_PROVIDER_IDS[1:],
    model_aliases=MODEL_ALIASES,
    foreign_models=FOREIGN_MODELS,
    quota_path="/v1/usages",
)


@hookimpl
def kimi_acp_register_backends(register):  # type: ignore[no-untyped-def]
    register(PRESET)

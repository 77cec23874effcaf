// A local stand-in for OpenClaw's official Kimi Coding plugin (@openclaw/kimi-provider), used
// by kimi-acp's demo and tests on an offline machine, where the gateway cannot fetch the real
// one. Like the real plugin it has the id "kimi" and owns the provider ids kimi, kimi-code and
// kimi-coding (see openclaw.plugin.json); unlike it, it registers no runtime code: the chat
// side of provider "kimi" is whatever models.providers.kimi in openclaw.json points at.
export default {
  id: "kimi",
  name: "Kimi Coding (local stand-in)",
  description: "Local stand-in for @openclaw/kimi-provider (offline demo and tests).",
  register() {},
};

// A local stand-in for OpenClaw's official Moonshot plugin (@openclaw/moonshot-provider), used
// by kimi-acp's demo and tests on an offline machine: with KIMI_API_KEY in its environment a
// gateway looks that plugin up (npm, ClawHub) at every start. It registers nothing.
export default {
  id: "moonshot",
  name: "Moonshot (local stand-in)",
  description: "Local stand-in for @openclaw/moonshot-provider (offline demo and tests).",
  register() {},
};

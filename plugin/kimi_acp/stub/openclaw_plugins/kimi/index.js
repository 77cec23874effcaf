// A local stand-in for OpenClaw's official Kimi Coding plugin (@openclaw/kimi-provider), used by
// kimi-acp's demo and tests on an offline machine, where the gateway cannot fetch the real one.
// Like the real plugin it has the id "kimi" and serves provider "kimi" under the aliases
// "kimi-code" and "kimi-coding" (its manifest declares the legacy model-id aliases). Unlike it,
// its catalog is only what models.providers.kimi in openclaw.json says (no built-in api.kimi.com
// endpoint: it never points anywhere by itself), and it has no auth flows, runtime model-id
// normalization, thinking policy or stream wrappers.

export default {
  id: "kimi",
  name: "Kimi Coding (local stand-in)",
  description: "Local stand-in for @openclaw/kimi-provider (offline demo and tests).",
  register(api) {
    if (typeof api.registerProvider !== "function") return;
    api.registerProvider({
      id: "kimi",
      label: "Kimi (local stand-in)",
      aliases: ["kimi-code", "kimi-coding"],
      envVars: ["KIMI_API_KEY", "KIMICODE_API_KEY"],
      auth: [],
      catalog: {
        order: "simple",
        run: async (ctx) => {
          const configured = ctx?.config?.models?.providers?.kimi;
          if (!configured || typeof configured.baseUrl !== "string") return null;
          return {
            provider: {
              baseUrl: configured.baseUrl,
              api: "anthropic-messages",
              models: Array.isArray(configured.models) ? configured.models : [],
              apiKey: process.env.KIMI_API_KEY ?? process.env.KIMICODE_API_KEY ?? "",
            },
          };
        },
      },
    });
  },
};

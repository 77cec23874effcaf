// TEST STAND-IN: a second ACP runtime backend, "fallback-standin", registered the way a real
// backend plugin registers (a service, openclaw/plugin-sdk/acp-runtime-backend). It answers
// every turn at once with a fixed text naming itself, so a test can see that OpenClaw's
// acp.fallbacks moved a turn here (and, from the gateway log, that it did not).
const ID = "fallback-standin";

function runtime(log) {
  return {
    async ensureSession(input) {
      log(`ensureSession ${input.sessionKey}`);
      return { sessionKey: input.sessionKey, agentId: input.agentId, backend: ID, runtimeSessionName: `fb-${input.sessionKey}`, cwd: input.cwd };
    },
    async *runTurn(input) {
      log(`turn ${input.handle.sessionKey}`);
      yield { type: "text_delta", text: `Answered by the fallback stand-in: ${String(input.text).slice(0, 80)}`, stream: "output", tag: "agent_message_chunk" };
      yield { type: "done", status: "completed", stopReason: "end_turn" };
    },
    getCapabilities() {
      return { controls: ["session/set_config_option"], configOptionKeys: ["model", "thinking", "timeout"] };
    },
    async setConfigOption() {},
    async cancel() {},
    async close() {},
  };
}

export default {
  id: ID,
  name: ID,
  description: "test stand-in ACP backend",
  register(api) {
    if (api.registrationMode && api.registrationMode !== "full") return;
    const log = (m) => api.logger?.info?.(`fallback-standin: ${m}`);
    api.registerService?.({
      id: ID,
      async start() {
        const sdk = await import("openclaw/plugin-sdk/acp-runtime-backend");
        sdk.registerAcpRuntimeBackend({ id: ID, runtime: runtime(log), healthy: () => true });
        log("registered");
      },
      async stop() {
        const sdk = await import("openclaw/plugin-sdk/acp-runtime-backend");
        sdk.unregisterAcpRuntimeBackend?.(ID);
      },
    });
  },
};

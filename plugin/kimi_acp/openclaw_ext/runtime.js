// kimi-acp as an OpenClaw ACP runtime backend (the AcpRuntime interface of
// openclaw/plugin-sdk/acp-runtime-backend). Each call is carried to the warm kimi-acp
// process as an ACP message; session updates come back as AcpRuntimeEvents. Routing, env,
// limits and every other decision are made in Python (kimi_acp/openclaw_backend.py, the
// OpenClaw door; the wire is kimi_acp/acp_stdio.py).

import { errorText } from "./acp-client.js";

export const BACKEND_ID = "kimi-acp";
const META = "kimiAcp"; // the _meta key kimi-acp reads in session/new

// An async queue: events pushed by the notification handler, pulled by OpenClaw.
function channel() {
  const items = [];
  let wake = null;
  let ended = false;
  return {
    push(item) {
      if (ended) return;
      items.push(item);
      wake?.();
    },
    end() {
      ended = true;
      wake?.();
    },
    get ended() {
      return ended;
    },
    async *[Symbol.asyncIterator]() {
      for (;;) {
        if (items.length) {
          yield items.shift();
          continue;
        }
        if (ended) return;
        await new Promise((resolve) => {
          wake = resolve;
        });
        wake = null;
      }
    },
  };
}

function text(content) {
  if (!content) return "";
  if (Array.isArray(content)) return content.map(text).join("");
  if (content.type === "text" && typeof content.text === "string") return content.text;
  if (content.type === "content") return text(content.content);
  return "";
}

// One ACP session/update -> zero or one AcpRuntimeEvent.
export function toEvent(update, titles) {
  const tag = update?.sessionUpdate;
  switch (tag) {
    case "agent_message_chunk":
    case "agent_thought_chunk": {
      const t = text(update.content);
      return t ? { type: "text_delta", text: t, stream: tag === "agent_thought_chunk" ? "thought" : "output", tag } : null;
    }
    case "tool_call": {
      const title = update.title || "tool";
      if (update.toolCallId) titles.set(update.toolCallId, title);
      return { type: "tool_call", text: title, tag, toolCallId: update.toolCallId, status: update.status, title, kind: update.kind };
    }
    case "tool_call_update": {
      const title = update.title || titles.get(update.toolCallId) || "tool";
      const status = update.status;
      return { type: "tool_call", text: status ? `${title} (${status})` : title, tag, toolCallId: update.toolCallId, status, title, kind: update.kind };
    }
    case "usage_update":
      return { type: "status", text: `context ${update.used}/${update.size} tokens`, tag, used: update.used, size: update.size };
    default:
      return null;
  }
}

function failure(err) {
  const data = err?.data && typeof err.data === "object" ? err.data : {};
  const code = typeof data.errorCode === "string" ? data.errorCode : err?.code != null ? String(err.code) : undefined;
  const retryable = code === "run_rate_limited" || code === "run_lost" || code === "backend_exited";
  return { message: errorText(err), code, detailCode: typeof data.status === "string" ? data.status : undefined, retryable };
}

function sessionIdOf(handle) {
  return handle?.backendSessionId || handle?.runtimeSessionName;
}

export function createRuntime(proc, log) {
  const turns = new Map(); // ACP session id -> { events, titles }
  // KIMI_ACP_TRACE=1: one log line per call OpenClaw makes, with a timestamp (for latency work)
  const trace = process.env.KIMI_ACP_TRACE === "1" ? (what) => log?.info?.(`kimi-acp trace ${Date.now()} ${what}`) : () => {};

  proc.onNotification((method, params) => {
    if (method !== "session/update") return;
    const turn = turns.get(params?.sessionId);
    if (!turn) return;
    const event = toEvent(params.update, turn.titles);
    if (event) turn.events.push(event);
  });
  proc.onExit(() => {
    // the process died: every turn in flight fails now (kimi-acp's store keeps the run, as lost)
    for (const turn of turns.values()) turn.fail?.();
  });

  const runtime = {
    async ensureSession(input) {
      trace(`ensureSession ${input?.sessionKey} mode=${input?.mode}`);
      const meta = {};
      for (const key of ["sessionKey", "agentId", "agent", "mode", "model", "modelExplicit", "thinking", "thinkingExplicit", "cwd", "env", "resumeSessionId"]) {
        if (input?.[key] !== undefined) meta[key] = input[key];
      }
      // ACP needs a cwd; without OpenClaw's, kimi-acp picks the agent's workspace (in _meta: none)
      const res = await proc.request("session/new", { cwd: input?.cwd || process.cwd(), mcpServers: [], _meta: { [META]: meta } }).catch((err) => {
        throw Object.assign(new Error(errorText(err)), { code: failure(err).code });
      });
      const info = res?._meta?.[META] ?? {};
      const handle = {
        sessionKey: input.sessionKey,
        agentId: input.agentId,
        backend: BACKEND_ID,
        runtimeSessionName: res.sessionId,
        cwd: info.cwd ?? input?.cwd,
        backendSessionId: res.sessionId,
      };
      if (info.agentSessionId) handle.agentSessionId = info.agentSessionId;
      if (info.appliedModel) handle.appliedModel = info.appliedModel;
      if (info.appliedThinking) handle.appliedThinking = info.appliedThinking;
      return handle;
    },

    startTurn(input) {
      trace(`startTurn ${input?.handle?.sessionKey}`);
      const sessionId = sessionIdOf(input.handle);
      const events = channel();
      const turn = { events, titles: new Map(), fail: null };
      let started;
      const promptStarted = new Promise((resolve) => {
        started = resolve;
      });
      let failNow;
      const died = new Promise((resolve) => {
        failNow = resolve;
      });
      turn.fail = () => failNow();
      const cancel = async () => {
        await proc.notify("session/cancel", { sessionId }).catch(() => {});
      };
      if (input.signal) {
        if (input.signal.aborted) cancel();
        else input.signal.addEventListener("abort", () => cancel(), { once: true });
      }
      const result = (async () => {
        const previous = turns.get(sessionId);
        previous?.events.end();
        turns.set(sessionId, turn);
        try {
          const prompt = [{ type: "text", text: input.text ?? "" }];
          const answer = proc.request("session/prompt", { sessionId, prompt, messageId: input.requestId });
          started();
          const res = await Promise.race([
            answer,
            died.then(() => {
              throw Object.assign(new Error("the kimi-acp process exited during this turn; the run is recorded as lost (kimi-acp ps --all)"), {
                data: { message: "the kimi-acp process exited during this turn; the run is recorded as lost (kimi-acp ps --all)", errorCode: "backend_exited" },
              });
            }),
          ]);
          const u = res?.usage;
          if (u && typeof u.totalTokens === "number") {
            events.push({ type: "status", text: `tokens: ${u.inputTokens ?? 0} in, ${u.outputTokens ?? 0} out`, tag: "usage_update" });
          }
          const status = res?.stopReason === "cancelled" ? "cancelled" : "completed";
          events.push({ type: "done", status, stopReason: res?.stopReason });
          return { status, stopReason: res?.stopReason };
        } catch (err) {
          const error = failure(err);
          if (error.code === "backend_exited") {
            error.message = "the kimi-acp process exited during this turn; the run is recorded as lost (kimi-acp ps --all), and kimi-acp is being restarted";
          }
          events.push({ type: "error", ...error });
          return { status: "failed", error };
        } finally {
          started();
          if (turns.get(sessionId) === turn) turns.delete(sessionId);
          events.end();
        }
      })();
      return {
        requestId: input.requestId,
        promptStarted,
        events,
        result,
        cancel,
        async closeStream() {
          events.end();
        },
      };
    },

    async *runTurn(input) {
      const turn = runtime.startTurn(input);
      for await (const event of turn.events) yield event;
      await turn.result;
    },

    getCapabilities() {
      return { controls: ["session/set_config_option", "session/status"], configOptionKeys: ["model", "thinking", "timeout"] };
    },

    async setConfigOption({ handle, key, value }) {
      trace(`setConfigOption ${key}=${value}`);
      try {
        await proc.request("session/set_config_option", { sessionId: sessionIdOf(handle), configId: key, value });
      } catch (err) {
        throw Object.assign(new Error(errorText(err)), { code: failure(err).code });
      }
    },

    async getStatus({ handle }) {
      trace(`getStatus ${handle?.sessionKey}`);
      return proc.request("_kimi-acp/status", { sessionId: sessionIdOf(handle) });
    },

    async doctor() {
      try {
        return await proc.request("_kimi-acp/doctor", {}, { timeoutMs: 30_000 });
      } catch (err) {
        const f = failure(err);
        return { ok: false, code: f.code ?? "unavailable", message: f.message };
      }
    },

    async prepareFreshSession({ sessionKey }) {
      await proc.request("_kimi-acp/fresh", { sessionKey });
    },

    async cancel({ handle }) {
      await proc.notify("session/cancel", { sessionId: sessionIdOf(handle) }).catch(() => {});
    },

    async close({ handle, reason, discardPersistentState }) {
      trace(`close ${handle?.sessionKey} ${reason}`);
      if (!proc.alive) return; // nothing to close: no process holds it (no new one is started for it)
      try {
        await proc.request("_kimi-acp/close", { sessionId: sessionIdOf(handle), reason, discardPersistentState: discardPersistentState === true });
      } catch (err) {
        log?.warn?.(`kimi-acp: close of ${handle?.sessionKey}: ${errorText(err)}`);
      }
    },
  };
  return runtime;
}

// kimi-acp as an OpenClaw ACP runtime backend (the AcpRuntime interface of
// openclaw/plugin-sdk/acp-runtime-backend). Each call is carried to the warm kimi-acp
// process as an ACP message; session updates come back as AcpRuntimeEvents. Routing, env,
// limits and every other decision are made in Python (kimi_acp/openclaw_backend.py, the
// OpenClaw door; the wire is kimi_acp/acp_stdio.py). What this file adds is what only the
// gateway has: the session rows (who asked, their /model choice) read for Python, the session
// row's token counts and the requester's notices written for Python, and the turn's own way to
// ask the user (OpenClaw's onElicitation), which answers Claude Code's permission questions
// (ACP session/request_permission from kimi-acp; see askInChat).

import { errorText } from "./acp-client.js";

export const BACKEND_ID = "kimi-acp";
const META = "kimiAcp"; // the _meta key kimi-acp reads in session/new and session/prompt
const DEFAULT_TURN_BOUND_MS = 24 * 3600 * 1000 + 5 * 60 * 1000; // a turn never waits forever

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
    case "current_mode_update":
      return { type: "status", text: `permission mode: ${update.currentModeId}`, tag };
    default:
      return null;
  }
}

// A failed turn as OpenClaw reads it. kimi-acp says in error.data which ACP code applies
// (ACP_TURN_FAILED with a rate-limit/outage message is what OpenClaw's acp.fallbacks acts on);
// its own code travels as detailCode (OpenClaw keeps only the ACP_* codes).
function failure(err) {
  const data = err?.data && typeof err.data === "object" ? err.data : {};
  const own = typeof data.errorCode === "string" ? data.errorCode : err?.code != null ? String(err.code) : undefined;
  const code = typeof data.acpCode === "string" ? data.acpCode : "ACP_TURN_FAILED";
  const retryable = data.retryable === true || own === "run_rate_limited" || own === "run_lost" || own === "backend_exited";
  return { message: errorText(err), code, detailCode: own, retryable };
}

function sessionIdOf(handle) {
  return handle?.backendSessionId || handle?.runtimeSessionName;
}

function str(value) {
  return typeof value === "string" && value ? value : undefined;
}

async function entryOf(api, agentId, sessionKey) {
  if (!sessionKey) return undefined;
  try {
    const entry = await api?.runtime?.agent?.session?.getSessionEntry?.({ agentId, sessionKey });
    return entry && typeof entry === "object" ? entry : undefined;
  } catch {
    return undefined; // not available in this OpenClaw version, or no such session
  }
}

function agentOf(sessionKey) {
  return typeof sessionKey === "string" && sessionKey.startsWith("agent:") ? sessionKey.split(":")[1] : undefined;
}

// A session's `/model` choice (providerOverride/modelOverride), when this OpenClaw exposes it.
export async function sessionChoice(api, agentId, sessionKey) {
  const session = {};
  const entry = await entryOf(api, agentId ?? agentOf(sessionKey), sessionKey);
  if (entry) {
    for (const key of ["providerOverride", "modelOverride", "modelOverrideSource"]) {
      if (str(entry[key])) session[key] = entry[key];
    }
  }
  return session;
}

// Who opened an ACP session, as OpenClaw recorded it on the child's row (sessions_spawn writes
// spawnedBy / parentSessionKey / createdActor before ensureSession; /acp spawn writes nothing).
async function requesterOf(api, input) {
  const entry = await entryOf(api, input?.agentId ?? agentOf(input?.sessionKey), input?.sessionKey);
  if (!entry) return undefined;
  const sessionKey = str(entry.spawnedBy) ?? str(entry.parentSessionKey);
  const actor = entry.createdActor && typeof entry.createdActor === "object" ? entry.createdActor : {};
  const agentId = (actor.type === undefined || actor.type === "agent" ? str(actor.id) : undefined) ?? agentOf(sessionKey);
  if (!sessionKey && !agentId) return undefined;
  const out = { via: str(entry.createdVia) ?? "session-row" };
  if (sessionKey) out.sessionKey = sessionKey;
  if (agentId) out.agentId = agentId;
  if (sessionKey) out.session = await sessionChoice(api, agentId, sessionKey);
  return out;
}

// Characters OpenClaw will not show in a question (controls, bidi and zero-width marks).
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2060\u2066-\u2069\ufeff]+/g;

function oneLine(value, max) {
  const clean = String(value ?? "").replace(UNSAFE, " ").replace(/ {2,}/g, " ").trim();
  return clean.length <= max ? clean : `${clean.slice(0, max - 1)}…`;
}

// ACP's session/request_permission as OpenClaw's elicitation form (what its chat can ask: one
// choice field of 2-4 options, a message of at most 1024 characters without control characters).
export function permissionForm(params) {
  const choices = (Array.isArray(params?.options) ? params.options : [])
    .filter((o) => str(o?.optionId) && str(o?.name))
    .slice(0, 4)
    .map((o) => ({ const: o.optionId, title: oneLine(o.name, 64) }));
  const question = params?._meta?.[META]?.question ?? params?.toolCall?.title ?? "Claude Code asks for permission";
  const form = {
    mode: "form",
    message: oneLine(`${question}. Allow it?`, 1000),
    requestedSchema: {
      type: "object",
      properties: {
        decision: {
          type: "string",
          title: "Permission",
          // OpenClaw's question record (the Control UI, `question.list`) shows this, not the message
          description: oneLine(`${question}. Allow once runs it now; for the session also allows this exact call later; Deny stops it.`, 500),
          oneOf: choices,
        },
      },
      required: ["decision"],
    },
    sessionId: oneLine(params?.sessionId, 128) || "kimi-acp",
  };
  if (str(params?.toolCall?.toolCallId)) form.toolCallId = oneLine(params.toolCall.toolCallId, 128);
  return form;
}

// OpenClaw's answer as ACP's: accept -> the chosen option; decline -> the reject option; cancel,
// nothing usable, or no answer -> cancelled. OpenClaw's reason travels in _meta.kimiAcp.message.
export function permissionOutcome(params, answer) {
  const options = Array.isArray(params?.options) ? params.options : [];
  const said = typeof answer?._meta?.message === "string" ? answer._meta.message : undefined;
  const meta = (message) => (message ? { _meta: { [META]: { message } } } : {});
  if (answer?.action === "accept") {
    const chosen = answer?.content?.decision;
    if (options.some((o) => o?.optionId === chosen)) return { outcome: { outcome: "selected", optionId: chosen } };
    return { outcome: { outcome: "cancelled" }, ...meta("the answer named none of the choices") };
  }
  if (answer?.action === "decline") {
    const reject = options.find((o) => o?.kind === "reject_once") ?? options.find((o) => o?.kind === "reject_always");
    if (reject) return { outcome: { outcome: "selected", optionId: reject.optionId }, ...meta(said ?? "declined in chat") };
  }
  return { outcome: { outcome: "cancelled" }, ...meta(said ?? "the question was cancelled in OpenClaw") };
}

export function createRuntime(proc, log, { api = () => undefined, managerStopping = async () => false } = {}) {
  const turns = new Map(); // ACP session id -> the turn whose prompt runs (a steer into it does not replace it)
  const byRequest = new Map(); // a turn's requestId -> the turn (kimi-acp tags each update with its prompt's)
  const bounds = new Map(); // ACP session id -> the longest a turn may take (ms), from kimi-acp
  // KIMI_ACP_TRACE=1: one log line per call OpenClaw makes, with a timestamp (for latency work)
  const trace = process.env.KIMI_ACP_TRACE === "1" ? (what) => log?.info?.(`kimi-acp trace ${Date.now()} ${what}`) : () => {};

  const turnOf = (params) => {
    const rid = params?._meta?.[META]?.requestId;
    return (str(rid) && byRequest.get(rid)) || turns.get(params?.sessionId);
  };

  // kimi-acp's words for another session while a turn runs (a spawned child's question, for the
  // session that spawned it): a system event there, and a wake so its agent sees it now.
  function notify(params) {
    const gw = api();
    if (!str(params?.sessionKey) || !str(params?.text)) return;
    const agentId = agentOf(params.sessionKey);
    try {
      gw?.runtime?.system?.enqueueSystemEvent?.(params.text, { sessionKey: params.sessionKey, agentId, contextKey: `kimi-acp:question:${params.toolCallId ?? ""}` });
      gw?.runtime?.system?.requestHeartbeatNow?.({ sessionKey: params.sessionKey, agentId, reason: "kimi-acp:question", intent: "immediate" });
    } catch (err) {
      log?.warn?.(`kimi-acp: could not tell ${params.sessionKey}: ${err?.message ?? err}`);
    }
  }

  // Claude Code asks before a tool call: the turn that owns the run asks in its chat, through
  // OpenClaw's onElicitation (one question at a time, 15 min, OpenClaw's own rules); no handler,
  // no turn, an error or no answer -> cancelled, which kimi-acp turns into a denial that says so.
  async function askInChat(params, { id }) {
    const turn = turnOf(params);
    if (!turn?.onElicitation) {
      return { outcome: { outcome: "cancelled" }, _meta: { [META]: { message: "this turn cannot ask anyone (OpenClaw gave it no way to)" } } };
    }
    trace(`elicitation ${params?.toolCall?.toolCallId}`);
    try {
      const answer = await turn.onElicitation(permissionForm(params), { requestId: id, signal: turn.asking.signal });
      return permissionOutcome(params, answer);
    } catch (err) {
      log?.warn?.(`kimi-acp: a permission question could not be asked: ${err?.message ?? err}`);
      return { outcome: { outcome: "cancelled" }, _meta: { [META]: { message: `OpenClaw could not ask: ${err?.message ?? err}` } } };
    }
  }
  proc.onRequest?.("session/request_permission", askInChat);

  proc.onNotification((method, params) => {
    if (method === "_kimi-acp/notice") {
      notify(params);
      return;
    }
    if (method !== "session/update") return;
    const turn = turnOf(params);
    if (!turn) return;
    turn.started(); // the first update of a turn: Kimi answered (nothing before this counts as started)
    const event = toEvent(params.update, turn.titles);
    if (event) turn.events.push(event);
  });
  proc.onExit(() => {
    // the process died: every turn in flight fails now (kimi-acp's store keeps the run, as lost)
    for (const turn of turns.values()) turn.fail?.();
  });

  // What kimi-acp asks the gateway to record when a turn ends: the child session row's token
  // counts (OpenClaw's completion Stats line reads them), a notice for the requester session.
  async function record(info, handle) {
    const gw = api();
    const patch = info?.sessionPatch;
    if (patch && typeof patch === "object" && handle?.sessionKey) {
      try {
        await gw?.runtime?.agent?.session?.patchSessionEntry?.({
          agentId: handle.agentId ?? agentOf(handle.sessionKey),
          sessionKey: handle.sessionKey,
          update: () => ({ ...patch }),
        });
      } catch (err) {
        log?.warn?.(`kimi-acp: could not record token usage on ${handle.sessionKey}: ${err?.message ?? err}`);
      }
    }
    const notice = info?.notice;
    if (notice && typeof notice === "object" && str(notice.sessionKey) && str(notice.text)) {
      try {
        const agentId = agentOf(notice.sessionKey);
        const queued = gw?.runtime?.system?.enqueueSystemEvent?.(notice.text, { sessionKey: notice.sessionKey, agentId, contextKey: "kimi-acp:notice" });
        // and wake that session now (as OpenClaw's own notices do): OpenClaw's own wake for a
        // cancelled child may already have come and gone
        if (queued) gw?.runtime?.system?.requestHeartbeat?.({ source: "other", intent: "immediate", reason: "kimi-acp:notice", agentId, sessionKey: notice.sessionKey });
      } catch (err) {
        log?.warn?.(`kimi-acp: could not tell ${notice.sessionKey}: ${err?.message ?? err}`);
      }
    }
  }

  const runtime = {
    async ensureSession(input) {
      trace(`ensureSession ${input?.sessionKey} mode=${input?.mode}`);
      const meta = {};
      for (const key of ["sessionKey", "agentId", "agent", "mode", "model", "modelExplicit", "thinking", "thinkingExplicit", "cwd", "env", "resumeSessionId"]) {
        if (input?.[key] !== undefined) meta[key] = input[key];
      }
      const requester = await requesterOf(api(), input);
      if (requester) meta.requester = requester;
      // ACP needs a cwd; without OpenClaw's, kimi-acp picks the agent's workspace (in _meta: none)
      const res = await proc.request("session/new", { cwd: input?.cwd || process.cwd(), mcpServers: [], _meta: { [META]: meta } }).catch((err) => {
        const f = failure(err);
        throw Object.assign(new Error(f.message), { code: f.code === "ACP_TURN_FAILED" ? "ACP_SESSION_INIT_FAILED" : f.code, detailCode: f.detailCode });
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
      if (typeof info.turnTimeoutMs === "number" && info.turnTimeoutMs > 0) bounds.set(res.sessionId, info.turnTimeoutMs);
      return handle;
    },

    startTurn(input) {
      trace(`startTurn ${input?.handle?.sessionKey} ${input?.mode}`);
      const sessionId = sessionIdOf(input.handle);
      const events = channel();
      let resolveStarted;
      const promptStarted = new Promise((resolve) => {
        resolveStarted = resolve;
      });
      let failNow;
      const died = new Promise((resolve) => {
        failNow = resolve;
      });
      const asking = new AbortController(); // aborted when the turn ends: its questions stop
      const turn = {
        events,
        titles: new Map(),
        started: () => resolveStarted(),
        fail: () => failNow(),
        onElicitation: typeof input.onElicitation === "function" ? input.onElicitation : undefined,
        asking,
      };
      const cancel = async () => {
        await proc.notify("session/cancel", { sessionId }).catch(() => {});
      };
      if (input.signal) {
        if (input.signal.aborted) cancel();
        else input.signal.addEventListener("abort", () => cancel(), { once: true });
      }
      const result = (async () => {
        const previous = turns.get(sessionId);
        // A steer while a turn runs goes into that turn (kimi-acp writes it into the same Claude
        // Code process): the running turn keeps its stream, and this one gets its own updates only
        // if kimi-acp runs it as a turn of its own after all (tagged with its requestId).
        const steering = input.mode === "steer" && previous && !previous.events.ended;
        if (!steering) {
          previous?.events.end();
          turns.set(sessionId, turn);
        }
        if (str(input.requestId)) byRequest.set(input.requestId, turn);
        try {
          const prompt = [{ type: "text", text: input.text ?? "" }];
          for (const a of Array.isArray(input.attachments) ? input.attachments : []) {
            if (str(a?.mediaType) && str(a?.data)) prompt.push({ type: "image", mimeType: a.mediaType, data: a.data });
          }
          const meta = { mode: input.mode ?? "prompt", canAsk: Boolean(turn.onElicitation) };
          const answer = proc.request(
            "session/prompt",
            { sessionId, prompt, messageId: input.requestId, _meta: { [META]: meta } },
            { timeoutMs: bounds.get(sessionId) ?? DEFAULT_TURN_BOUND_MS },
          );
          const res = await Promise.race([
            answer,
            died.then(() => {
              throw Object.assign(new Error("the kimi-acp process exited during this turn; the run is recorded as lost (kimi-acp ps --all)"), {
                data: { message: "the kimi-acp process exited during this turn; the run is recorded as lost (kimi-acp ps --all)", errorCode: "backend_exited" },
              });
            }),
          ]);
          const info = res?._meta?.[META] ?? {};
          const u = res?.usage;
          if (u && typeof u.totalTokens === "number") {
            events.push({ type: "status", text: `tokens: ${u.inputTokens ?? 0} in, ${u.outputTokens ?? 0} out`, tag: "usage_update" });
          }
          await record(info, input.handle); // before done: OpenClaw's announce reads the row right after
          const status = res?.stopReason === "cancelled" ? "cancelled" : "completed";
          events.push({ type: "done", status, stopReason: res?.stopReason });
          return { status, stopReason: res?.stopReason };
        } catch (err) {
          const error = failure(err);
          if (error.detailCode === "backend_exited") {
            error.message = "the kimi-acp process exited during this turn; the run is recorded as lost (kimi-acp ps --all), and kimi-acp is being restarted";
          }
          await record(err?.data?.[META], input.handle);
          events.push({ type: "error", ...error });
          return { status: "failed", error };
        } finally {
          // promptStarted is NOT resolved here: a turn that failed before Kimi answered (a 429,
          // an outage) never started, so OpenClaw may move it to its acp.fallbacks.
          if (turns.get(sessionId) === turn) turns.delete(sessionId);
          if (byRequest.get(input.requestId) === turn) byRequest.delete(input.requestId);
          asking.abort();
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
      return {
        controls: ["session/set_mode", "session/set_config_option", "session/status"],
        configOptionKeys: ["model", "thinking", "timeout", "permission_mode"],
      };
    },

    async setMode({ handle, mode }) {
      trace(`setMode ${mode}`);
      try {
        await proc.request("session/set_mode", { sessionId: sessionIdOf(handle), modeId: mode });
      } catch (err) {
        throw Object.assign(new Error(errorText(err)), { code: "ACP_INVALID_RUNTIME_OPTION" });
      }
    },

    async setConfigOption({ handle, key, value }) {
      trace(`setConfigOption ${key}=${value}`);
      try {
        const res = await proc.request("session/set_config_option", { sessionId: sessionIdOf(handle), configId: key, value });
        return res?.configOptions ? { configOptions: res.configOptions } : undefined;
      } catch (err) {
        throw Object.assign(new Error(errorText(err)), { code: "ACP_INVALID_RUNTIME_OPTION" });
      }
    },

    async getStatus({ handle }) {
      trace(`getStatus ${handle?.sessionKey}`);
      return proc.request("_kimi-acp/status", { sessionId: sessionIdOf(handle), sessionKey: handle?.sessionKey });
    },

    async doctor() {
      if (await managerStopping()) {
        return {
          ok: false,
          code: "manager_stopping",
          message:
            "OpenClaw's ACP session manager is stopping: every ACP turn is dropped before it reaches a backend (after an in-process " +
            "`openclaw gateway restart`); restart the gateway process (stop, then start)",
        };
      }
      try {
        return await proc.request("_kimi-acp/doctor", {}, { timeoutMs: 30_000 });
      } catch (err) {
        const f = failure(err);
        return { ok: false, code: f.detailCode ?? "unavailable", message: f.message };
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

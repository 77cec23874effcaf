// kimi-acp's OpenClaw extension: a thin carrier, no policy.
//
// 1. An ACP runtime backend with id "kimi-acp" (registered from a plugin service with
//    openclaw/plugin-sdk/acp-runtime-backend): every ACP session OpenClaw opens on it
//    (sessions_spawn, /acp spawn, a configured ACP binding, a resumed session) runs in ONE warm
//    `kimi-acp acp` process per gateway, which routes and supervises Claude Code (runtime.js
//    maps the AcpRuntime calls to ACP messages, acp-client.js is the wire).
// 2. A before_tool_call hook on sessions_spawn: for every spawn with runtime "acp" it asks
//    Python (the warm process, else `kimi-acp hook before-tool-call`) with the spawn
//    arguments, the requester's agent id and session key, and the requester session's
//    `/model` choice, and hands the answer ({params?, block?, blockReason?}) back to OpenClaw.
// 3. reply_dispatch (OpenClaw's own tryDispatchAcpReplyHook, as acpx registers it): messages
//    into an ACP session (chat.send, sessions.send, bound conversations and threads) become
//    turns of that session, instead of being answered by the agent's own chat model.
// 4. before_dispatch: an `/acp spawn …` chat command is noted (who sent it, that session's
//    `/model` choice) and handed to Python, which matches it to the session it opens: OpenClaw
//    records no requester for /acp spawn.
// Every routing decision is made in Python (kimi_acp/commands/hook.py, kimi_acp/routing.py,
// kimi_acp/openclaw_backend.py).
//
// It fails closed: if Python cannot be asked, times out or answers something that is not
// JSON, the spawn is blocked with a readable reason.
//
// The program run is, first found: $KIMI_ACP_BIN; our plugin config's extension.command
// (written by `kimi-acp install`); a bridge.json beside this file (older installs); PATH.
//
// Tested with openclaw 2026.9.6 (the acp-runtime-backend and acp-runtime subpaths are JS-only,
// "private-local" exports of the plugin SDK; without them the backend is not registered and
// the gateway log says why).

import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { KimiAcpProcess, errorText } from "./acp-client.js";
import { BACKEND_ID, createRuntime, sessionChoice } from "./runtime.js";

const HERE = dirname(fileURLToPath(import.meta.url));
const BRIDGE_ARGS = ["hook", "before-tool-call"];
const TIMEOUT_MS = 10_000;
const TESTED_OPENCLAW = "2026.9.6";
const SDK_BACKEND = "openclaw/plugin-sdk/acp-runtime-backend";
const SDK_RUNTIME = "openclaw/plugin-sdk/acp-runtime";
const STATE = Symbol.for("kimi-acp.openclaw-extension"); // one warm process per Node process
const MAX_OUTPUT = 1024 * 1024;
const ACP_SPAWN = /^\s*\/acp\s+spawn(\s|$)/;

function validArgv(argv) {
  return Array.isArray(argv) && argv.length > 0 && argv.every((a) => typeof a === "string" && a);
}

// The kimi-acp program: $KIMI_ACP_BIN, else plugins.entries.kimi-acp.config.extension.command
// (written by `kimi-acp install`), else bridge.json beside this file (older installs), else PATH.
function bridgeCommand(api) {
  const fromEnv = process.env.KIMI_ACP_BIN;
  if (fromEnv) return [fromEnv];
  const configured = api?.pluginConfig?.extension?.command;
  if (validArgv(configured)) return configured;
  try {
    const file = JSON.parse(readFileSync(join(HERE, "bridge.json"), "utf8"));
    if (validArgv(file?.command)) return file.command;
  } catch {
    // no bridge.json: use PATH
  }
  return ["kimi-acp"];
}

function shorten(text, max = 200) {
  const line = String(text ?? "").trim().split("\n").pop() ?? "";
  return line.length > max ? `${line.slice(0, max)}...` : line;
}

// Runs the bridge command (when the warm process is not up); resolves with its parsed answer, rejects with a short reason.
function runBridge(api, input) {
  const [program, ...prefix] = bridgeCommand(api);
  return new Promise((resolve, reject) => {
    const child = execFile(
      program,
      [...prefix, ...BRIDGE_ARGS],
      { timeout: TIMEOUT_MS, killSignal: "SIGKILL", maxBuffer: MAX_OUTPUT, encoding: "utf8", windowsHide: true },
      (error, stdout, stderr) => {
        if (error) {
          if (error.code === "ENOENT") return reject(new Error(`bridge program not found: ${program}`));
          if (error.killed || error.signal) {
            return reject(new Error(error.killed ? `bridge timed out after ${TIMEOUT_MS / 1000} s` : `bridge killed by ${error.signal}`));
          }
          const detail = shorten(stderr) || shorten(error.message);
          return reject(new Error(`bridge failed (exit ${error.code}): ${detail}`));
        }
        let answer;
        try {
          answer = JSON.parse(stdout);
        } catch {
          return reject(new Error(`bridge printed no JSON: ${shorten(stdout, 80) || "(empty output)"}`));
        }
        if (answer === null || typeof answer !== "object" || Array.isArray(answer)) {
          return reject(new Error("bridge answer is not a JSON object"));
        }
        resolve(answer);
      },
    );
    child.stdin?.on("error", () => {}); // the bridge may exit before reading; the callback reports it
    child.stdin?.end(JSON.stringify(input));
  });
}

function pluginVersion() {
  try {
    return JSON.parse(readFileSync(join(HERE, "package.json"), "utf8")).version ?? "0";
  } catch {
    return "0";
  }
}

// The per-process state: the warm process, the runtime, whether the backend is registered, and
// the newest plugin api. OpenClaw evaluates this module again on every load (a restart, a plugin
// reload, discovery), but this object is one per process: each registration hands it its api.
function state(api) {
  let st = globalThis[STATE];
  if (!st) {
    st = { api, proc: null, runtime: null, registered: false, sdk: null };
    const log = {
      info: (m) => st.api?.logger?.info?.(m),
      warn: (m) => st.api?.logger?.warn?.(m),
      error: (m) => st.api?.logger?.error?.(m),
    };
    st.log = log;
    st.proc = new KimiAcpProcess({
      command: () => bridgeCommand(st.api),
      env: () => ({ ...process.env }),
      log,
      clientInfo: { name: "openclaw-kimi-acp", title: "OpenClaw gateway (kimi-acp extension)", version: pluginVersion() },
    });
    st.runtime = createRuntime(st.proc, log, { api: () => st.api, managerStopping: () => managerStopping(st.importSdk) });
    globalThis[STATE] = st;
  }
  if (api?.registrationMode === undefined || api.registrationMode === "full") st.api = api ?? st.api;
  return st;
}

async function askPython(api, input) {
  const st = state(api);
  if (st.registered && st.proc.running) {
    return st.proc.request("_kimi-acp/route", { ...input, backend: true }, { timeoutMs: TIMEOUT_MS }).catch((err) => {
      throw new Error(errorText(err));
    });
  }
  return runBridge(api, input);
}

export function createBeforeToolCallHandler(api) {
  return async function beforeToolCall(event, ctx) {
    const params = event?.params;
    if (!params || params.runtime !== "acp") return undefined;
    const input = {
      event: { toolName: event.toolName, params },
      context: { agentId: ctx?.agentId ?? null, sessionKey: ctx?.sessionKey ?? null, sessionId: ctx?.sessionId ?? null },
      session: await sessionChoice(state(api).api ?? api, ctx?.agentId, ctx?.sessionKey),
    };
    let answer;
    try {
      answer = await askPython(api, input);
      if (answer === null || typeof answer !== "object" || Array.isArray(answer)) throw new Error("bridge answer is not a JSON object");
    } catch (err) {
      const reason = `kimi-acp could not route this ACP spawn: ${err.message}; run \`kimi-acp doctor\``;
      api.logger?.warn?.(reason);
      return { block: true, blockReason: reason };
    }
    const result = {};
    if (answer.params && typeof answer.params === "object" && !Array.isArray(answer.params)) result.params = answer.params;
    if (answer.block === true) {
      result.block = true;
      result.blockReason = typeof answer.blockReason === "string" && answer.blockReason ? answer.blockReason : "blocked by kimi-acp";
    }
    return Object.keys(result).length ? result : undefined;
  };
}

// before_dispatch: note an `/acp spawn …` command for Python (OpenClaw records no requester for
// the session it opens). Never claims the message: the command runs as usual.
export function createBeforeDispatchHandler(api) {
  return async function beforeDispatch(event, ctx) {
    const text = typeof event?.content === "string" ? event.content : typeof event?.body === "string" ? event.body : "";
    if (!ACP_SPAWN.test(text)) return undefined;
    const st = state(api);
    if (!st.registered || !st.proc.alive) return undefined;
    const sessionKey = event?.sessionKey ?? ctx?.sessionKey ?? null;
    const agentId = typeof sessionKey === "string" && sessionKey.startsWith("agent:") ? sessionKey.split(":")[1] : undefined;
    try {
      const session = await sessionChoice(st.api, agentId, sessionKey);
      await st.proc.notify("_kimi-acp/command", { text, sessionKey, session, at: Date.now() });
    } catch (err) {
      st.log.warn(`kimi-acp: could not note ${shorten(text, 60)}: ${errorText(err)}`);
    }
    return undefined;
  };
}

// reply_dispatch: OpenClaw's own generic ACP reply dispatcher (it runs the message as a turn of
// the session's ACP backend, through OpenClaw's session manager). Loaded lazily: the SDK subpath
// only resolves inside a gateway.
export function createReplyDispatchHandler({ importSdk = (name) => import(name) } = {}) {
  let dispatch = null;
  return async function replyDispatch(...args) {
    if (dispatch === null) {
      try {
        const sdk = await importSdk(SDK_RUNTIME);
        dispatch = typeof sdk?.tryDispatchAcpReplyHook === "function" ? sdk.tryDispatchAcpReplyHook : false;
      } catch {
        dispatch = false; // not a gateway with this SDK door: ordinary dispatch goes on
      }
    }
    return dispatch ? dispatch(...args) : undefined;
  };
}

// OpenClaw 2026.9.6 marks its process-wide ACP session manager "stopping" when the gateway
// closes and never clears the flag on an in-process restart (`openclaw gateway restart` of a
// foreground gateway): every later ACP turn, on any backend, is then dropped as "cancelled"
// before it reaches a runtime. A service starts only at boot or after a plugin reload, when no
// turn of the old generation is left, so the flag is stale here: clear it, and say so.
async function clearStaleStopping(importSdk, log) {
  try {
    const sdk = await importSdk(SDK_RUNTIME);
    const manager = sdk?.getAcpSessionManager?.();
    if (manager && manager.stopping === true) {
      manager.stopping = false;
      log.warn(
        "kimi-acp: OpenClaw's ACP session manager was left 'stopping' by an in-process restart (an OpenClaw bug seen in " +
          `${TESTED_OPENCLAW}: every ACP turn would be dropped); cleared it`,
      );
    }
  } catch {
    // not available: doctor() reports the flag when it can read it
  }
}

export async function managerStopping(importSdk = (name) => import(name)) {
  try {
    const sdk = await importSdk(SDK_RUNTIME);
    return sdk?.getAcpSessionManager?.()?.stopping === true;
  } catch {
    return false;
  }
}

// The service: registers the ACP runtime backend and owns the warm process.
export function createService(api, { importSdk = (name) => import(name) } = {}) {
  return {
    id: BACKEND_ID,
    async start() {
      const st = state(api);
      st.api = api;
      st.importSdk = importSdk;
      let sdk;
      try {
        sdk = await importSdk(SDK_BACKEND);
        if (typeof sdk?.registerAcpRuntimeBackend !== "function") throw new Error("registerAcpRuntimeBackend is not exported");
      } catch (err) {
        api.logger?.error?.(
          `kimi-acp: cannot register the ACP runtime backend: ${SDK_BACKEND} is not available in this OpenClaw (${err?.message ?? err}); ` +
            `kimi-acp is tested with openclaw ${TESTED_OPENCLAW}. ACP spawns routed to agent "kimi-acp" will fail until OpenClaw is upgraded or downgraded to a tested version.`,
        );
        return;
      }
      await clearStaleStopping(importSdk, st.log);
      st.sdk = sdk;
      st.proc.start().catch((err) => st.log.warn(`kimi-acp: the backend process did not start: ${errorText(err)}`));
      sdk.registerAcpRuntimeBackend({ id: BACKEND_ID, runtime: st.runtime, healthy: () => st.proc.running });
      st.registered = true;
      st.log.info(`kimi-acp: ACP runtime backend "${BACKEND_ID}" registered`);
    },
    async stop() {
      const st = globalThis[STATE];
      if (!st) return;
      if (st.registered) {
        try {
          st.sdk?.unregisterAcpRuntimeBackend?.(BACKEND_ID);
        } catch {
          // already gone
        }
        st.registered = false;
      }
      await st.proc.stop();
    },
  };
}

export default {
  id: "kimi-acp",
  name: "kimi-acp",
  description: "Runs OpenClaw's ACP sessions of Claude Code on Kimi (or another backend) through the kimi-acp Python package.",
  register(api) {
    state(api);
    api.on("before_tool_call", createBeforeToolCallHandler(api), { matcher: ["sessions_spawn"] });
    api.on("before_dispatch", createBeforeDispatchHandler(api));
    api.on("reply_dispatch", createReplyDispatchHandler(), { eligibleDispatchKinds: ["acp"] });
    // Only a full registration (the gateway) gets the service; discovery and CLI metadata
    // loads must not start processes. Services only start in the gateway anyway.
    if (!api.registrationMode || api.registrationMode === "full") api.registerService?.(createService(api));
  },
};

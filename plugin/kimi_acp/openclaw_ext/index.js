// kimi-acp's OpenClaw extension: a thin carrier, no policy.
//
// 1. An ACP runtime backend with id "kimi-acp" (registered from a plugin service with
//    openclaw/plugin-sdk/acp-runtime-backend): OpenClaw's ACP spawns of agent "kimi-acp"
//    run in ONE warm `kimi-acp acp` process per gateway, which supervises Claude Code
//    (runtime.js maps the AcpRuntime calls to ACP messages, acp-client.js is the wire).
// 2. A before_tool_call hook on sessions_spawn: for every spawn with runtime "acp" it asks
//    Python (the warm process, else `kimi-acp hook before-tool-call`) with the spawn
//    arguments, the requester's agent id and session key, and the requester session's
//    `/model` choice, and hands the answer ({params?, block?, blockReason?}) back to
//    OpenClaw. Every routing decision is made in Python (kimi_acp/commands/hook.py).
//
// It fails closed: if Python cannot be asked, times out or answers something that is not
// JSON, the spawn is blocked with a readable reason.
//
// The program run is, first found: $KIMI_ACP_BIN; our plugin config's extension.command
// (written by `kimi-acp install`); a bridge.json beside this file (older installs); PATH.
//
// Tested with openclaw 2026.9.6 (the acp-runtime-backend subpath is a JS-only,
// "private-local" export of the plugin SDK; without it the backend is not registered and
// the gateway log says why).

import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { KimiAcpProcess, errorText } from "./acp-client.js";
import { BACKEND_ID, createRuntime } from "./runtime.js";

const HERE = dirname(fileURLToPath(import.meta.url));
const BRIDGE_ARGS = ["hook", "before-tool-call"];
const TIMEOUT_MS = 10_000;
const TESTED_OPENCLAW = "2026.9.6";
const SDK_BACKEND = "openclaw/plugin-sdk/acp-runtime-backend";
const STATE = Symbol.for("kimi-acp.openclaw-extension"); // one warm process per Node process
const MAX_OUTPUT = 1024 * 1024;

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

// The requester session's `/model` choice, when this OpenClaw exposes it.
async function sessionChoice(api, ctx) {
  const session = {};
  if (!ctx?.sessionKey) return session;
  try {
    const entry = await api.runtime?.agent?.session?.getSessionEntry?.({ agentId: ctx.agentId, sessionKey: ctx.sessionKey });
    if (entry && typeof entry === "object") {
      for (const key of ["providerOverride", "modelOverride", "modelOverrideSource"]) {
        if (typeof entry[key] === "string" && entry[key]) session[key] = entry[key];
      }
    }
  } catch {
    // not available in this OpenClaw version, or no such session: routing does without it
  }
  return session;
}

function pluginVersion() {
  try {
    return JSON.parse(readFileSync(join(HERE, "package.json"), "utf8")).version ?? "0";
  } catch {
    return "0";
  }
}

// The per-process state: the warm process, the runtime, whether the backend is registered.
function state(api) {
  if (!globalThis[STATE]) {
    const log = api?.logger;
    const proc = new KimiAcpProcess({
      command: () => bridgeCommand(api),
      env: () => ({ ...process.env }),
      log,
      clientInfo: { name: "openclaw-kimi-acp", title: "OpenClaw gateway (kimi-acp extension)", version: pluginVersion() },
    });
    globalThis[STATE] = { proc, runtime: createRuntime(proc, log), registered: false, sdk: null };
  }
  return globalThis[STATE];
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
      session: await sessionChoice(api, ctx),
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

// The service: registers the ACP runtime backend and owns the warm process.
export function createService(api, { importSdk = (name) => import(name) } = {}) {
  return {
    id: BACKEND_ID,
    async start() {
      const st = state(api);
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
      st.sdk = sdk;
      st.proc.start().catch((err) => api.logger?.warn?.(`kimi-acp: the backend process did not start: ${errorText(err)}`));
      sdk.registerAcpRuntimeBackend({ id: BACKEND_ID, runtime: st.runtime, healthy: () => st.proc.running });
      st.registered = true;
      api.logger?.info?.(`kimi-acp: ACP runtime backend "${BACKEND_ID}" registered`);
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
  description: "Runs OpenClaw's ACP spawns of Claude Code on Kimi (or another backend) through the kimi-acp Python package.",
  register(api) {
    api.on("before_tool_call", createBeforeToolCallHandler(api), { matcher: ["sessions_spawn"] });
    // Only a full registration (the gateway) gets the service; discovery and CLI metadata
    // loads must not start processes. Services only start in the gateway anyway.
    if (!api.registrationMode || api.registrationMode === "full") api.registerService?.(createService(api));
  },
};

// kimi-acp's OpenClaw extension: a bridge, nothing more.
//
// For every `sessions_spawn` with runtime "acp" it runs the Python side,
// `kimi-acp hook before-tool-call`, with the spawn arguments, the requester's
// agent id and session key, and the requester session's `/model` choice on
// stdin, and hands that command's JSON answer ({params?, block?, blockReason?})
// back to OpenClaw. Every routing decision is made in Python
// (kimi_acp/commands/hook.py); this file makes none.
//
// It fails closed: if the bridge cannot be run, times out or answers
// something that is not JSON, the spawn is blocked with a readable reason.
//
// The program run is, first found: $KIMI_ACP_BIN; the "command" argv in the
// sibling bridge.json (written by `kimi-acp install`); `kimi-acp` on PATH.

import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));
const BRIDGE_ARGS = ["hook", "before-tool-call"];
const TIMEOUT_MS = 10_000;
const MAX_OUTPUT = 1024 * 1024;

function bridgeCommand() {
  const fromEnv = process.env.KIMI_ACP_BIN;
  if (fromEnv) return [fromEnv];
  try {
    const file = JSON.parse(readFileSync(join(HERE, "bridge.json"), "utf8"));
    const argv = file?.command;
    if (Array.isArray(argv) && argv.length > 0 && argv.every((a) => typeof a === "string" && a)) {
      return argv;
    }
  } catch {
    // no bridge.json (not installed with `kimi-acp install`): use PATH
  }
  return ["kimi-acp"];
}

function shorten(text, max = 200) {
  const line = String(text ?? "").trim().split("\n").pop() ?? "";
  return line.length > max ? `${line.slice(0, max)}...` : line;
}

// Runs the bridge; resolves with its parsed answer, rejects with a short reason.
function runBridge(input) {
  const [program, ...prefix] = bridgeCommand();
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
      answer = await runBridge(input);
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

export default {
  id: "kimi-acp",
  name: "kimi-acp",
  description: "Routes OpenClaw's ACP spawns of Claude Code to Kimi (or another backend) through the kimi-acp Python package.",
  register(api) {
    api.on("before_tool_call", createBeforeToolCallHandler(api), { matcher: ["sessions_spawn"] });
  },
};

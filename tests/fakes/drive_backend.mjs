// Drives kimi-acp's OpenClaw extension from Node 24 the way OpenClaw's ACP manager does, one
// JSON command per stdin line, one JSON answer per stdout line. The ACP runtime backend is
// registered into a stand-in of openclaw/plugin-sdk/acp-runtime-backend (a map, as the SDK's).
//   {"op": "start"}                                  -> {"pid"}  (service.start: the warm process)
//   {"op": "ensure", "input": {...}}                 -> {"handle"}
//   {"op": "turn", "handle", "text", "cancelAfterMs"?, "abortAfterMs"?, "mode"?, "attachments"?, "elicit"?}
//     -> {"events", "result", "promptStarted", "asked"}
//     with "background": true -> {"turnId"} at once; {"op": "await", "turnId"} -> the outcome
//     "elicit": the turn's onElicitation (OpenClaw's AcpRuntimeTurnInput.onElicitation) answers each
//     question with the next of a list: {"action": "accept", "content": {...}}, {"action": "decline"},
//     {"action": "cancel"}, {"wait": true} (never answers until the question is aborted), or
//     {"throw": "message"}; without "elicit" the turn has no onElicitation. "asked" lists each
//     question as OpenClaw's handler got it ({request, requestId, aborted}).
//   {"op": "cancel", "handle"}                       -> runtime.cancel (as /acp cancel)
//   {"op": "config", "handle", "key", "value"}       -> {} | {"error"}
//   {"op": "status" | "close" | "fresh", ...}, {"op": "doctor"}, {"op": "caps"}
//   {"op": "hook", "event", "ctx"}                   -> the before_tool_call answer
//   {"op": "pid"}                                    -> the warm process's pid (null when none)
//   {"op": "rows", "rows": {key: entry}}             -> {} (what getSessionEntry answers, as OpenClaw's session rows)
//   {"op": "dispatch", "event", "ctx"}               -> the before_dispatch answer (an "/acp spawn" is noted)
//   {"op": "mode", "handle", "mode"}                 -> setMode: {} | {"error"}
//   {"op": "gateway"}                                -> {patches, events, wakes}: patchSessionEntry, enqueueSystemEvent
//                                                       and requestHeartbeatNow calls
//   {"op": "stop"}                                   -> service.stop, then exit
import { createInterface } from "node:readline";

const [, , indexUrl] = process.argv;
const ext = await import(indexUrl);
const backends = new Map();
const logs = [];
const rows = new Map(); // stand-in for OpenClaw's session rows
const patches = [];
const systemEvents = [];
const wakes = [];
const api = {
  registrationMode: "full",
  logger: { info: (m) => logs.push(m), warn: (m) => logs.push(`WARN ${m}`), error: (m) => logs.push(`ERROR ${m}`), debug() {} },
  runtime: {
    agent: {
      session: {
        getSessionEntry: async ({ sessionKey }) => rows.get(sessionKey),
        patchSessionEntry: async ({ agentId, sessionKey, update }) => {
          const entry = { ...(rows.get(sessionKey) ?? {}), ...(await update(rows.get(sessionKey) ?? {}, {})) };
          rows.set(sessionKey, entry);
          patches.push({ agentId, sessionKey, entry });
          return entry;
        },
      },
    },
    system: {
      enqueueSystemEvent: (text, opts) => (systemEvents.push({ text, ...opts }), true),
      requestHeartbeat: (opts) => systemEvents.push({ wake: true, ...opts }),
      requestHeartbeatNow: (opts) => wakes.push(opts),
    },
  },
  hooks: [],
  services: [],
  on(name, handler, opts) { this.hooks.push({ name, handler, opts }); },
  registerService(s) { this.services.push(s); },
};
ext.default.register(api);
const sdk = {
  registerAcpRuntimeBackend: (b) => backends.set(b.id, b),
  unregisterAcpRuntimeBackend: (id) => backends.delete(id),
};
const noSdk = process.env.DRIVER_NO_SDK === "1"; // an OpenClaw without the acp-runtime-backend export
const service = ext.createService(api, {
  importSdk: async (name) => {
    if (noSdk) throw Object.assign(new Error(`Cannot find module '${name}'`), { code: "ERR_MODULE_NOT_FOUND" });
    return sdk;
  },
});
const state = () => globalThis[Symbol.for("kimi-acp.openclaw-extension")];
const rt = () => backends.get("kimi-acp").runtime;
const send = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const background = new Map(); // turnId -> the turn's outcome (a {"background": true} turn answers at once)

let requests = 0;

async function runTurn(cmd) {
  const controller = new AbortController();
  const asked = [];
  const answers = Array.isArray(cmd.elicit) ? [...cmd.elicit] : [];
  const onElicitation = async (request, context) => {
    const entry = { request, requestId: context.requestId, aborted: false };
    asked.push(entry);
    const answer = answers.shift() ?? { action: "cancel" };
    if (answer.throw) throw new Error(answer.throw);
    if (answer.wait) {
      await new Promise((resolve) => context.signal.addEventListener("abort", resolve, { once: true }));
      entry.aborted = true;
      return { action: "cancel", _meta: { message: "ACP input request is no longer active." } };
    }
    return answer;
  };
  requests += 1;
  const turn = rt().startTurn({
    handle: cmd.handle, text: cmd.text, mode: cmd.mode ?? "prompt", requestId: `req-${Date.now()}-${requests}`, signal: controller.signal,
    ...(cmd.attachments ? { attachments: cmd.attachments } : {}),
    ...(cmd.elicit ? { onElicitation } : {}),
  });
  let promptStarted = false;
  turn.promptStarted.then(() => {
    promptStarted = true;
  });
  if (cmd.cancelAfterMs !== undefined) setTimeout(() => rt().cancel({ handle: cmd.handle, reason: "test" }), cmd.cancelAfterMs);
  if (cmd.abortAfterMs !== undefined) setTimeout(() => controller.abort(), cmd.abortAfterMs);
  const events = [];
  for await (const e of turn.events) events.push(e);
  const result = await turn.result;
  await new Promise((r) => setTimeout(r, 10)); // a started promise has settled by now
  return { events, result, promptStarted, asked };
}

for await (const line of createInterface({ input: process.stdin })) {
  const cmd = JSON.parse(line);
  try {
    switch (cmd.op) {
      case "start":
        await service.start();
        if (noSdk) {
          send({ registered: [...backends.keys()], logs });
          break;
        }
        await state().proc.ready();
        send({ pid: state().proc.conn.child.pid, registered: [...backends.keys()], hooks: api.hooks.map((h) => h.name), services: api.services.map((s) => s.id) });
        break;
      case "pid":
        send({ pid: state()?.proc?.alive ? state().proc.conn.child.pid : null, healthy: backends.get("kimi-acp")?.healthy?.() ?? null });
        break;
      case "ensure":
        send({ handle: await rt().ensureSession(cmd.input) });
        break;
      case "config":
        await rt().setConfigOption({ handle: cmd.handle, key: cmd.key, value: cmd.value });
        send({});
        break;
      case "turn": {
        const run = runTurn(cmd);
        if (cmd.background) {
          const id = `t${background.size + 1}`;
          background.set(id, run);
          send({ turnId: id });
        } else {
          send(await run);
        }
        break;
      }
      case "await":
        send(await background.get(cmd.turnId));
        break;
      case "cancel":
        await rt().cancel({ handle: cmd.handle, reason: cmd.reason ?? "test" });
        send({});
        break;
      case "rows":
        for (const [k, v] of Object.entries(cmd.rows)) rows.set(k, v);
        send({});
        break;
      case "dispatch": {
        const hook = api.hooks.find((h) => h.name === "before_dispatch");
        send({ answer: (await hook.handler(cmd.event, cmd.ctx ?? {})) ?? null });
        break;
      }
      case "mode":
        await rt().setMode({ handle: cmd.handle, mode: cmd.mode });
        send({});
        break;
      case "gateway":
        send({ patches, events: systemEvents, wakes });
        break;
      case "status":
        send(await rt().getStatus({ handle: cmd.handle }));
        break;
      case "doctor":
        send(await rt().doctor());
        break;
      case "caps":
        send(await rt().getCapabilities({}));
        break;
      case "close":
        await rt().close({ handle: cmd.handle, reason: cmd.reason ?? "oneshot-complete" });
        send({});
        break;
      case "fresh":
        await rt().prepareFreshSession({ sessionKey: cmd.sessionKey });
        send({});
        break;
      case "hook": {
        const hook = api.hooks.find((h) => h.name === "before_tool_call");
        send({ answer: (await hook.handler(cmd.event, cmd.ctx)) ?? null });
        break;
      }
      case "logs":
        send({ logs });
        break;
      case "stop":
        await service.stop();
        send({ stopped: true, registered: [...backends.keys()] });
        process.exit(0);
      default:
        send({ error: `unknown op ${cmd.op}` });
    }
  } catch (err) {
    send({ error: String(err?.message ?? err), code: err?.code ?? null });
  }
}

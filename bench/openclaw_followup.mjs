// B12 driver: ONE persistent kimi-acp session driven from Node as OpenClaw's ACP manager drives
// it (ensureSession once, then a startTurn per message, as reply_dispatch or /acp steer sends
// them). One line on stdin = one follow-up message; one JSON line back with when it was sent.
// Usage (from bench/openclaw_followup.py): node openclaw_followup.mjs <index.js URL> <cwd>
import { createInterface } from "node:readline";

const [, , indexUrl, cwd] = process.argv;
const { createService } = await import(indexUrl);
const reg = {};
const api = { logger: { info() {}, warn: (m) => process.stderr.write(`${m}\n`), error: (m) => process.stderr.write(`${m}\n`), debug() {} } };
const service = createService(api, { importSdk: async () => ({ registerAcpRuntimeBackend: (b) => (reg.backend = b), unregisterAcpRuntimeBackend() {} }) });
await service.start();
const state = globalThis[Symbol.for("kimi-acp.openclaw-extension")];
await state.proc.ready();
const rt = reg.backend.runtime;
const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const handle = await rt.ensureSession({ sessionKey: `agent:claude:acp:bench-${process.pid}`, agentId: "claude", agent: "claude", mode: "persistent", model: "kimi/kimi-for-coding", modelExplicit: true, cwd });
out({ ready: true, pid: state.proc.conn.child.pid });

let n = 0;
for await (const line of createInterface({ input: process.stdin })) {
  if (line.trim() === "quit") break;
  n += 1;
  const cpu0 = process.cpuUsage();
  const sentAt = Date.now();
  const turn = rt.startTurn({ handle, text: `follow-up ${n}`, mode: "prompt", requestId: `r${n}` });
  let text = "";
  for await (const e of turn.events) if (e.type === "text_delta") text += e.text;
  const result = await turn.result;
  const cpu = process.cpuUsage(cpu0);
  out({ sentAt, wallMs: Date.now() - sentAt, nodeCpuMs: (cpu.user + cpu.system) / 1000, status: result.status, ok: text.includes(`You said: follow-up ${n}`) });
}
await service.stop();
process.exit(0);

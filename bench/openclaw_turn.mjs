// B8/B9 driver: kimi-acp's OpenClaw extension, its runtime object driven directly from Node,
// as OpenClaw's ACP manager drives it: ensureSession -> setConfigOption(model) -> startTurn ->
// events until done -> close. One line on stdin = one spawn; one JSON line back per spawn.
// Usage (from bench/openclaw_turn.py): node openclaw_turn.mjs <index.js URL> <cwd>
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
out({ ready: true, pid: state.proc.conn.child.pid });

let n = 0;
for await (const line of createInterface({ input: process.stdin })) {
  if (line.trim() === "quit") break;
  n += 1;
  const cpu0 = process.cpuUsage();
  const t0 = Date.now();
  const p0 = performance.now();
  const handle = await rt.ensureSession({ sessionKey: `agent:kimi-acp:acp:bench-${process.pid}-${n}`, agentId: "kimi-acp", agent: "kimi-acp", mode: "oneshot", model: "kimi/kimi-k2.5", modelExplicit: true, cwd });
  const ensured = performance.now() - p0;
  await rt.setConfigOption({ handle, key: "model", value: "kimi/kimi-k2.5" });
  const turn = rt.startTurn({ handle, text: "say hi", mode: "prompt", requestId: `r${n}` });
  let text = "";
  for await (const e of turn.events) if (e.type === "text_delta") text += e.text;
  const result = await turn.result;
  const wall = performance.now() - p0;
  await rt.getStatus({ handle });
  await rt.close({ handle, reason: "oneshot-complete" });
  const cpu = process.cpuUsage(cpu0);
  out({ t0, wallMs: wall, ensureMs: ensured, nodeCpuMs: (cpu.user + cpu.system) / 1000, status: result.status, ok: text.includes("Hello from the Kimi stub") });
}
await service.stop();
process.exit(0); // stdin would keep the loop alive

// A gateway client for the tests, through OpenClaw's own client code (the same calls the
// `openclaw gateway call` CLI makes, without starting a new Node and CLI for each), with the
// operator.admin scope the /acp runtime commands need. One JSON request per stdin line, one
// JSON answer per stdout line, in order:
//   {"method", "params", "timeoutMs"?, "expectFinal"?}  ->  {"ok": true, "result"} | {"ok": false, "error"}
//   node gateway_admin.mjs <openclaw package dir>
// The gateway's URL and token come from the environment (OPENCLAW_CONFIG_PATH,
// OPENCLAW_STATE_DIR, OPENCLAW_GATEWAY_TOKEN, HOME), as for the openclaw CLI.
import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";

const [pkg] = process.argv.slice(2);
const { callGatewayFromCli } = await import(pathToFileURL(`${pkg}/dist/plugin-sdk/gateway-runtime.js`).href);
const send = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
send({ ready: true });
for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  const { method, params = {}, timeoutMs = 60000, expectFinal = false } = JSON.parse(line);
  try {
    const opts = { json: true, timeout: String(timeoutMs), ...(expectFinal ? { expectFinal: true } : {}) };
    const result = await callGatewayFromCli(method, opts, params, { scopes: ["operator.admin"], progress: false });
    send({ ok: true, result: result ?? null });
  } catch (err) {
    send({ ok: false, error: String(err?.message ?? err) });
  }
}
process.exit(0);

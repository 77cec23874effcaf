// One gateway call with operator.admin, through OpenClaw's own gateway client (the scope the
// /acp runtime commands need; `openclaw gateway call` asks for less). Prints the JSON answer.
//   node gateway_admin.mjs <openclaw package dir> METHOD JSON_PARAMS [timeoutMs]
// The gateway's URL and token come from the environment (OPENCLAW_CONFIG_PATH,
// OPENCLAW_STATE_DIR, OPENCLAW_GATEWAY_TOKEN, HOME), as for the openclaw CLI.
import { pathToFileURL } from "node:url";

const [pkg, method, params = "{}", timeoutMs = "60000"] = process.argv.slice(2);
const { callGatewayFromCli } = await import(pathToFileURL(`${pkg}/dist/plugin-sdk/gateway-runtime.js`).href);
try {
  const answer = await callGatewayFromCli(method, { json: true, timeout: timeoutMs }, JSON.parse(params), { scopes: ["operator.admin"], progress: false });
  process.stdout.write(JSON.stringify(answer ?? null) + "\n");
  process.exit(0);
} catch (err) {
  process.stderr.write(`${err?.message ?? err}\n`);
  process.exit(1);
}

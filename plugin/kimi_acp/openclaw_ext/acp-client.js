// The wire to the warm kimi-acp process: JSON-RPC 2.0 over newline-delimited JSON on the
// child's stdio (the Agent Client Protocol's stdio transport). No policy here: the requests
// kimi-acp sends the other way (session/request_permission) go to whoever registered for them
// (runtime.js), and any other is refused as "method not found".
//
// KimiAcpProcess keeps one `kimi-acp acp` process per gateway: started on demand, restarted
// with backoff when it dies (pending requests fail at once with a clear error), stopped by
// closing its stdin (kimi-acp then kills every run's process group and exits), then SIGTERM,
// then SIGKILL. If the gateway dies without stopping it, its stdin ends all the same.

import { spawn } from "node:child_process";

const PROTOCOL_VERSION = 1;
const BACKOFF_MS = [500, 1000, 2000, 4000, 8000, 16000, 30000];
const HEALTHY_AFTER_MS = 60_000; // a process that lived this long resets the backoff
const STOP_GRACE_MS = 10_000; // stdin closed -> runs killed and reaped -> exit
const KILL_GRACE_MS = 3_000;
export const LINE_LIMIT = 50 * 1024 * 1024; // kimi-acp's stdio limit per message (acp_stdio._LINE_LIMIT)

export class RpcError extends Error {
  constructor(code, message, data) {
    super(message);
    this.code = code;
    this.data = data;
  }
}

// The message a person should read: kimi-acp puts it in error.data.message.
export function errorText(err) {
  if (err?.data && typeof err.data === "object" && typeof err.data.message === "string" && err.data.message) {
    return err.data.message;
  }
  return String(err?.message ?? err);
}

class Connection {
  constructor(child, { log, onNotification, onRequest, onExit }) {
    this.child = child;
    this.log = log;
    this.onNotification = onNotification;
    this.onRequest = onRequest; // (method) -> handler(params, {id}) | undefined
    this.nextId = 1;
    this.pending = new Map();
    this.exited = false;
    this.exitInfo = null;
    this.startedAt = Date.now();
    this.exitPromise = new Promise((resolve) => {
      child.once("exit", (code, signal) => {
        this.exited = true;
        this.exitInfo = { code, signal };
        const why = new RpcError(-32000, `the kimi-acp process exited (${signal ?? `code ${code}`})`, {
          message: `the kimi-acp process exited (${signal ?? `code ${code}`}); it is being restarted, run \`kimi-acp doctor\` if this repeats`,
          errorCode: "backend_exited",
        });
        for (const { reject } of this.pending.values()) reject(why);
        this.pending.clear();
        onExit?.(this, code, signal);
        resolve(this.exitInfo);
      });
    });
    child.once("error", (err) => {
      // spawn failure (ENOENT...): 'exit' may not follow
      if (!this.exited) {
        this.exited = true;
        this.exitInfo = { code: null, signal: null, error: err };
        const why = new RpcError(-32000, err.message, {
          message: err.code === "ENOENT" ? `kimi-acp program not found: ${child.spawnfile}; install kimi-acp (pip install kimi-acp) and run \`kimi-acp install\`` : `cannot start kimi-acp: ${err.message}`,
          errorCode: err.code === "ENOENT" ? "missing_binary" : "backend_start_failed",
        });
        for (const { reject } of this.pending.values()) reject(why);
        this.pending.clear();
        onExit?.(this, null, null, err);
      }
    });
    let buf = "";
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (chunk) => {
      buf += chunk;
      let cut;
      while ((cut = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, cut);
        buf = buf.slice(cut + 1);
        if (line.trim()) this.#receive(line);
      }
    });
    let errBuf = "";
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (chunk) => {
      errBuf += chunk;
      let cut;
      while ((cut = errBuf.indexOf("\n")) >= 0) {
        const line = errBuf.slice(0, cut).trimEnd();
        errBuf = errBuf.slice(cut + 1);
        if (line) log?.info?.(line.startsWith("kimi-acp") ? line : `kimi-acp: ${line}`);
      }
    });
    child.stdin.on("error", () => {}); // EPIPE after an exit: the exit handler reports it
  }

  #receive(line) {
    let msg;
    try {
      msg = JSON.parse(line);
    } catch {
      this.log?.warn?.(`kimi-acp: ignored a line that is not JSON from the kimi-acp process`);
      return;
    }
    if (!msg || typeof msg !== "object") return;
    if (typeof msg.method === "string") {
      if ("id" in msg) {
        // agent -> client requests: the registered handler answers (session/request_permission);
        // anything else (fs, terminal) is refused cleanly
        const handler = this.onRequest?.(msg.method);
        if (!handler) {
          this.#write({ jsonrpc: "2.0", id: msg.id, error: { code: -32601, message: `method not found: ${msg.method}` } });
          return;
        }
        Promise.resolve()
          .then(() => handler(msg.params ?? {}, { id: msg.id }))
          .then(
            (result) => this.#write({ jsonrpc: "2.0", id: msg.id, result: result ?? null }),
            (err) => this.#write({ jsonrpc: "2.0", id: msg.id, error: { code: -32603, message: String(err?.message ?? err) } }),
          );
      } else {
        this.onNotification?.(msg.method, msg.params ?? {});
      }
      return;
    }
    const waiter = this.pending.get(msg.id);
    if (!waiter) return;
    this.pending.delete(msg.id);
    if (msg.error) waiter.reject(new RpcError(msg.error.code, msg.error.message, msg.error.data));
    else waiter.resolve(msg.result ?? null);
  }

  #write(obj) {
    return this.#writeLine(JSON.stringify(obj));
  }

  #writeLine(line) {
    if (this.exited || !this.child.stdin.writable) return false;
    this.child.stdin.write(line + "\n");
    return true;
  }

  request(method, params, { timeoutMs } = {}) {
    return new Promise((resolve, reject) => {
      if (this.exited) {
        reject(new RpcError(-32000, "the kimi-acp process is not running", { message: "the kimi-acp process is not running; it is being restarted", errorCode: "backend_exited" }));
        return;
      }
      const id = this.nextId++;
      const line = JSON.stringify({ jsonrpc: "2.0", id, method, params });
      const size = Buffer.byteLength(line);
      if (size > LINE_LIMIT) {
        // refused here: kimi-acp would only answer it with an error (and drop its bytes)
        reject(new RpcError(-32600, `${method} is too large`, {
          message: `kimi-acp cannot take ${method}: the message is ${size} bytes, over its ${LINE_LIMIT}-byte limit (a huge prompt or attachment?)`,
          errorCode: "message_too_large",
        }));
        return;
      }
      let timer = null;
      if (timeoutMs) {
        timer = setTimeout(() => {
          this.pending.delete(id);
          reject(new RpcError(-32000, `${method} timed out`, { message: `kimi-acp did not answer ${method} within ${timeoutMs / 1000} s`, errorCode: "timeout" }));
        }, timeoutMs);
        timer.unref?.();
      }
      this.pending.set(id, {
        resolve: (v) => (timer && clearTimeout(timer), resolve(v)),
        reject: (e) => (timer && clearTimeout(timer), reject(e)),
      });
      this.#writeLine(line);
    });
  }

  notify(method, params) {
    return this.#write({ jsonrpc: "2.0", method, params });
  }

  async stop() {
    if (this.exited) return this.exitInfo;
    this.child.stdin.end();
    const timeout = (ms) => new Promise((r) => setTimeout(r, ms).unref?.());
    if (await Promise.race([this.exitPromise.then(() => true), timeout(STOP_GRACE_MS).then(() => false)])) return this.exitInfo;
    this.child.kill("SIGTERM");
    if (await Promise.race([this.exitPromise.then(() => true), timeout(KILL_GRACE_MS).then(() => false)])) return this.exitInfo;
    this.child.kill("SIGKILL");
    return this.exitPromise;
  }
}

export class KimiAcpProcess {
  constructor({ command, env, log, clientInfo }) {
    this.command = command; // () => [program, ...args]
    this.env = env; // () => environment for the process
    this.log = log;
    this.clientInfo = clientInfo;
    this.conn = null;
    this.starting = null;
    this.running = false; // between start() and stop()
    this.attempt = 0;
    this.restartTimer = null;
    this.listeners = new Set(); // notification listeners (method, params)
    this.handlers = new Map(); // method -> handler(params, {id}) of requests from kimi-acp
    this.exitListeners = new Set(); // (conn) after an unexpected exit
  }

  get alive() {
    return Boolean(this.conn && !this.conn.exited);
  }

  onNotification(fn) {
    this.listeners.add(fn);
  }

  onExit(fn) {
    this.exitListeners.add(fn);
  }

  // Answers a request kimi-acp sends to the gateway (one handler per method).
  onRequest(method, fn) {
    this.handlers.set(method, fn);
  }

  start() {
    this.running = true;
    return this.ready();
  }

  // The live, initialized connection (starting the process if needed).
  ready() {
    if (this.conn && !this.conn.exited && !this.starting) return Promise.resolve(this.conn);
    if (!this.starting) {
      this.starting = this.#launch().finally(() => {
        this.starting = null;
      });
    }
    return this.starting;
  }

  async #launch() {
    clearTimeout(this.restartTimer);
    this.restartTimer = null;
    const [program, ...args] = this.command();
    // Its own session: a signal to the gateway's process group (a SIGKILL of the group
    // included) never kills it before it has killed its runs; it ends when its stdin does.
    const child = spawn(program, [...args, "acp"], {
      stdio: ["pipe", "pipe", "pipe"],
      env: this.env(),
      windowsHide: true,
      detached: true,
    });
    const conn = new Connection(child, {
      log: this.log,
      onNotification: (method, params) => {
        for (const fn of this.listeners) {
          try {
            fn(method, params);
          } catch (err) {
            this.log?.warn?.(`kimi-acp: an update handler failed: ${err?.message ?? err}`);
          }
        }
      },
      onRequest: (method) => this.handlers.get(method),
      onExit: (c, code, signal, error) => this.#exited(c, code, signal, error),
    });
    this.conn = conn;
    await conn.request(
      "initialize",
      { protocolVersion: PROTOCOL_VERSION, clientCapabilities: { fs: { readTextFile: false, writeTextFile: false }, terminal: false }, clientInfo: this.clientInfo },
      { timeoutMs: 60_000 },
    );
    this.log?.info?.(`kimi-acp: backend process ${child.pid} ready`);
    return conn;
  }

  #exited(conn, code, signal, error) {
    if (conn !== this.conn) return;
    for (const fn of this.exitListeners) {
      try {
        fn(conn);
      } catch {
        // listeners only fail turns
      }
    }
    if (!this.running) return;
    const lived = Date.now() - conn.startedAt;
    if (lived > HEALTHY_AFTER_MS) this.attempt = 0;
    const delay = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
    this.attempt += 1;
    const why = error ? error.message : signal ?? `code ${code}`;
    this.log?.warn?.(`kimi-acp: the backend process exited (${why}); restarting in ${delay / 1000} s`);
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      if (this.running && !this.alive) this.ready().catch((err) => this.log?.warn?.(`kimi-acp: restart failed: ${errorText(err)}`));
    }, delay);
    this.restartTimer.unref?.();
  }

  async request(method, params, opts) {
    const conn = await this.ready();
    return conn.request(method, params, opts);
  }

  async notify(method, params) {
    const conn = await this.ready();
    return conn.notify(method, params);
  }

  async stop() {
    this.running = false;
    clearTimeout(this.restartTimer);
    this.restartTimer = null;
    const starting = this.starting;
    if (starting) await starting.catch(() => {});
    const conn = this.conn;
    this.conn = null;
    if (conn) await conn.stop();
  }
}

// Starts and stops `fedgate-admin serve` for the API and browser tests: each test gets a
// throw-away store, its own accounts and a free loopback port, and stops the server by PID.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import http from 'node:http';

const here = dirname(fileURLToPath(import.meta.url));
export const ADMIN = process.env.FEDGATE_ADMIN || resolve(here, '../../build/admin/fedgate-admin');
export const ADMIN_PASSWORD = 'admin-password-1';
export const VIEWER_PASSWORD = 'viewer-password-1';

// Runs the CLI against the store; returns { status, stdout, stderr }.
export function cli(store, ...args) {
  const r = spawnSync(ADMIN, ['--store', store, ...args], { encoding: 'utf8', timeout: 30000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

// A store with Lync's defaults, an "admin" and a "viewer" account.
export function makeStore() {
  const dir = mkdtempSync(join(tmpdir(), 'fedgate-web-'));
  const store = join(dir, 'store');
  let r = cli(store, 'init');
  if (r.status !== 0) throw new Error('fedgate-admin init failed: ' + r.stderr);
  for (const [name, role, pw] of [['admin', 'admin', ADMIN_PASSWORD], ['viewer', 'viewer', VIEWER_PASSWORD]]) {
    const f = join(dir, name + '.pw');
    writeFileSync(f, pw + '\n', { mode: 0o600 });
    r = cli(store, 'user', 'add', name, '--role', role, '--password-file', f);
    if (r.status !== 0) throw new Error('fedgate-admin user add failed: ' + r.stderr);
  }
  return { dir, store };
}

// Starts the server; resolves to { url, port, pid, store, stop() } once it prints its address.
export async function startServer(opts = {}) {
  const { dir, store } = opts.store ? { dir: null, store: opts.store } : makeStore();
  const args = ['--store', store, 'serve', '--listen', '127.0.0.1:0', ...(opts.args || [])];
  const child = spawn(ADMIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const url = await new Promise((resolveUrl, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error('serve did not start: ' + stderr)), 15000);
    child.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on (https?:\/\/127\.0\.0\.1:(\d+))\//);
      if (m) { clearTimeout(timer); resolveUrl(m[1]); }
    });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`serve exited ${code}: ${stderr}`)); });
  });
  const port = Number(new URL(url).port);
  return {
    url, port, pid: child.pid, store, dir, child,
    stderr: () => stderr,
    alive: () => child.exitCode === null && child.signalCode === null,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', (code, sig) => r({ code, sig })));
        process.kill(child.pid, 'SIGTERM');
        const res = await exited;
        if (res.code !== 0) throw new Error(`serve stopped with ${res.code ?? res.sig}: ${stderr}`);
      }
      if (dir) rmSync(dir, { recursive: true, force: true });
    },
  };
}

// One raw HTTP request with full control of headers and body. Resolves to
// { status, headers, text, json }.
export function request(port, method, path, { headers = {}, body } = {}) {
  return new Promise((resolveReq, reject) => {
    const data = body === undefined ? undefined : (typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body));
    const h = { Host: `127.0.0.1:${port}`, ...headers };
    if (data !== undefined && !Object.keys(h).some((k) => k.toLowerCase() === 'content-type'))
      h['Content-Type'] = 'application/json';
    const req = http.request({ host: '127.0.0.1', port, method, path, headers: h }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json = null;
        try { json = JSON.parse(text); } catch (e) { /* not JSON */ }
        resolveReq({ status: res.statusCode, headers: res.headers, text, json });
      });
    });
    req.on('error', reject);
    if (data !== undefined) req.write(data);
    req.end();
  });
}

// Signs in; returns { cookie, csrf, role, call(method, path, body, extraHeaders) }.
export async function signIn(port, name, password) {
  const r = await request(port, 'POST', '/api/login', { body: { name, password } });
  if (r.status !== 200) throw new Error(`sign-in as ${name}: ${r.status} ${r.text}`);
  const cookie = r.headers['set-cookie'][0].split(';')[0];
  const s = {
    cookie, csrf: r.json.csrf, role: r.json.role, setCookie: r.headers['set-cookie'][0],
    call(method, path, body, extra = {}) {
      const headers = { Cookie: cookie, ...extra };
      if (method !== 'GET' && method !== 'HEAD' && !('X-CSRF-Token' in extra)) headers['X-CSRF-Token'] = s.csrf;
      if ('X-CSRF-Token' in extra && extra['X-CSRF-Token'] === null) delete headers['X-CSRF-Token'];
      return request(port, method, path, { headers, body });
    },
  };
  return s;
}

// Control panel latencies (not a CTest test): node tests/api/bench_panel.mjs with FEDGATE_ADMIN set.
// Baseline measured in the same run: GET /api/session (session and role lookup, no policy read);
// each figure is printed with its ratio to that baseline, since the machine is shared and noisy.
import { startServer, signIn, ADMIN_PASSWORD, request } from './server.mjs';
const srv = await startServer();
const med = (a) => a.sort((x, y) => x - y)[Math.floor(a.length / 2)];
try {
  const logins = [];
  for (let i = 0; i < 5; i++) { const t = performance.now(); await signIn(srv.port, 'admin', ADMIN_PASSWORD); logins.push(performance.now() - t); }
  const s = await signIn(srv.port, 'admin', ADMIN_PASSWORD);
  const creates = [];
  for (let i = 0; i < 1000; i++) {
    const t = performance.now();
    const r = await s.call('POST', '/api/partners', { domain: `p${i}.example`, dialback: false, additional_domains: [`x${i}.example`] });
    creates.push(performance.now() - t);
    if (r.status !== 201) throw new Error(r.text);
  }
  const lists = [];
  for (let i = 0; i < 20; i++) { const t = performance.now(); const r = await s.call('GET', '/api/partners'); lists.push(performance.now() - t); if (i === 0) console.log('list bytes', r.text.length); }
  const sess = [];
  for (let i = 0; i < 200; i++) { const t = performance.now(); await s.call('GET', '/api/session'); sess.push(performance.now() - t); }
  const base = med(sess);
  const line = (what, ms) => console.log(`${what}: median ${ms.toFixed(3)} ms (${(ms / base).toFixed(0)}x baseline)`);
  console.log(`baseline GET /api/session: median ${base.toFixed(3)} ms`);
  line('sign-in (argon2id verify)', med(logins));
  line('create partner (validated LMDB commit with audit)', med(creates));
  line('GET /api/partners with 1000 partners', med(lists));
} finally { await srv.stop(); }

// API tests of the control panel: every request the CLI refuses is refused by the API with the
// same message (422, field and reason), bad requests get 4xx and never stop the server, and
// sessions, CSRF, roles, staleness and the login rate limit hold. Each test runs its own
// `fedgate-admin serve` on a free loopback port against a throw-away store.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, request, signIn, cli, ADMIN_PASSWORD, VIEWER_PASSWORD } from './server.mjs';

async function withServer(fn, opts) {
  const srv = await startServer(opts);
  try {
    await fn(srv);
    // Whatever the test sent, the server is still up and answering.
    assert.ok(srv.alive(), 'serve is still running');
    const r = await request(srv.port, 'GET', '/api/session');
    assert.equal(r.status, 401);
  } finally {
    await srv.stop();
  }
}

const PAGES = ['/', '/partners', '/partners/new', '/partners/edit', '/gateway', '/hosted', '/access', '/audit'];
const API = [
  ['GET', '/api/session'], ['POST', '/api/logout'], ['GET', '/api/partners'], ['POST', '/api/partners'],
  ['GET', '/api/partners/a.example'], ['PUT', '/api/partners/a.example'], ['DELETE', '/api/partners/a.example'],
  ['GET', '/api/gateway'], ['PUT', '/api/gateway'], ['GET', '/api/hosted'], ['POST', '/api/hosted'],
  ['GET', '/api/hosted/h.example'], ['PUT', '/api/hosted/h.example'], ['DELETE', '/api/hosted/h.example'],
  ['GET', '/api/access'], ['PUT', '/api/access'], ['DELETE', '/api/access/global'], ['GET', '/api/audit'],
  ['GET', '/api/nothing-here'],
];

test('sign-in is required for every page and every API call', async () => {
  await withServer(async (srv) => {
    for (const p of PAGES) {
      const r = await request(srv.port, 'GET', p);
      assert.equal(r.status, 303, `page ${p}`);
      assert.equal(r.headers.location, '/login', `page ${p} sends to the sign-in page`);
    }
    for (const [m, p] of API) {
      const r = await request(srv.port, m, p, { body: m === 'GET' || m === 'DELETE' ? undefined : {} });
      assert.equal(r.status, 401, `${m} ${p}`);
      assert.equal(r.json.error, 'unauthenticated');
    }
    // A made-up or expired cookie is no better than none.
    const r = await request(srv.port, 'GET', '/api/partners', { headers: { Cookie: 'fg_session=' + 'A'.repeat(43) } });
    assert.equal(r.status, 401);
    // The script of the panel is not public either; the sign-in page and its files are.
    assert.equal((await request(srv.port, 'GET', '/app.js')).status, 401);
    for (const p of ['/login', '/login.js', '/style.css'])
      assert.equal((await request(srv.port, 'GET', p)).status, 200, p);
    assert.equal((await request(srv.port, 'GET', '/no-such-file.js')).status, 404);
  });
});

test('session cookie is HttpOnly and SameSite=Strict; sign-out ends the session', async () => {
  await withServer(async (srv) => {
    const s = await signIn(srv.port, 'admin', ADMIN_PASSWORD);
    assert.match(s.setCookie, /HttpOnly/);
    assert.match(s.setCookie, /SameSite=Strict/);
    assert.match(s.setCookie, /Path=\//);
    assert.equal(s.role, 'admin');
    assert.equal(s.csrf.length, 43);
    let r = await s.call('GET', '/api/session');
    assert.equal(r.status, 200);
    assert.equal(r.json.user, 'admin');
    r = await s.call('POST', '/api/logout');
    assert.equal(r.status, 200);
    r = await s.call('GET', '/api/partners');
    assert.equal(r.status, 401);
  });
});

test('account changes on the command line act on open sessions at once', async () => {
  await withServer(async (srv) => {
    const a = await signIn(srv.port, 'admin', ADMIN_PASSWORD);
    const v = await signIn(srv.port, 'viewer', VIEWER_PASSWORD);
    // Demoted: the next change is refused.
    assert.equal(cli(srv.store, 'user', 'role', 'admin', 'viewer').status, 0);
    let r = await a.call('POST', '/api/partners', { domain: 'demoted.example', dialback: false });
    assert.equal(r.status, 403);
    assert.equal((await a.call('GET', '/api/session')).json.role, 'viewer');
    // Password changed: the session signed in with the old one ends.
    assert.equal(cli(srv.store, 'user', 'passwd', 'viewer', '--generate').status, 0);
    r = await v.call('GET', '/api/partners');
    assert.equal(r.status, 401);
    assert.match(r.json.reason, /password changed/);
    // Removed: gone.
    assert.equal(cli(srv.store, 'user', 'remove', 'admin').status, 0);
    assert.equal((await a.call('GET', '/api/partners')).status, 401);
  });
});

test('wrong passwords are refused and sign-in attempts are rate-limited', async () => {
  await withServer(async (srv) => {
    for (let i = 0; i < 5; i++) {
      const r = await request(srv.port, 'POST', '/api/login', { body: { name: 'admin', password: 'wrong-password-' + i } });
      assert.equal(r.status, 401);
      assert.equal(r.json.error, 'bad_credentials');
    }
    // Unknown account: same answer as a wrong password.
    let r = await request(srv.port, 'POST', '/api/login', { body: { name: 'nobody', password: 'whatever-it-is' } });
    assert.equal(r.status, 429);
    r = await request(srv.port, 'POST', '/api/login', { body: { name: 'admin', password: ADMIN_PASSWORD } });
    assert.equal(r.status, 429, 'even the right password waits once the limit is reached');
    assert.ok(Number(r.headers['retry-after']) > 0);
    assert.equal(r.headers['set-cookie'], undefined);
  });
});

test('sessions expire after the idle time', async () => {
  await withServer(async (srv) => {
    const s = await signIn(srv.port, 'admin', ADMIN_PASSWORD);
    assert.equal((await s.call('GET', '/api/partners')).status, 200);
    await new Promise((r) => setTimeout(r, 2300));
    assert.equal((await s.call('GET', '/api/partners')).status, 401);
  }, { args: ['--session-ttl', '2'] });
});

test('every change needs the CSRF token and a same-origin request', async () => {
  await withServer(async (srv) => {
    const s = await signIn(srv.port, 'admin', ADMIN_PASSWORD);
    const body = { domain: 'csrf.example', tls: 'Required', sasl: 'Required', dialback: false };
    let r = await s.call('POST', '/api/partners', body, { 'X-CSRF-Token': null });
    assert.equal(r.status, 403);
    assert.equal(r.json.error, 'csrf');
    r = await s.call('POST', '/api/partners', body, { 'X-CSRF-Token': 'B'.repeat(43) });
    assert.equal(r.status, 403);
    r = await s.call('POST', '/api/partners', body, { Origin: 'http://evil.example' });
    assert.equal(r.status, 403);
    assert.equal(r.json.error, 'cross_origin');
    r = await s.call('POST', '/api/partners', body, { 'Sec-Fetch-Site': 'cross-site' });
    assert.equal(r.status, 403);
    r = await s.call('DELETE', '/api/access/global', undefined, { 'X-CSRF-Token': null });
    assert.equal(r.status, 403);
    assert.equal(cli(srv.store, 'partner', 'get', 'csrf.example').status, 3, 'nothing was saved');
    r = await s.call('POST', '/api/partners', body, { Origin: `http://127.0.0.1:${srv.port}` });
    assert.equal(r.status, 201);
    assert.equal(cli(srv.store, 'partner', 'get', 'csrf.example').status, 0);
  });
});

test('the viewer role can read everything and change nothing', async () => {
  await withServer(async (srv) => {
    assert.equal(cli(srv.store, 'partner', 'new', 'seen.example', '--dialback', 'false').status, 0);
    const s = await signIn(srv.port, 'viewer', VIEWER_PASSWORD);
    assert.equal(s.role, 'viewer');
    for (const p of ['/api/partners', '/api/partners/seen.example', '/api/gateway', '/api/hosted', '/api/access', '/api/audit'])
      assert.equal((await s.call('GET', p)).status, 200, p);
    const changes = [
      ['POST', '/api/partners', { domain: 'new.example' }], ['PUT', '/api/partners/seen.example', { description: 'x' }],
      ['DELETE', '/api/partners/seen.example'], ['PUT', '/api/gateway', { connection_limit: 5 }],
      ['POST', '/api/hosted', { domain: 'h.example' }], ['PUT', '/api/access', { key: 'global', value: false }],
      ['DELETE', '/api/access/global'],
    ];
    for (const [m, p, b] of changes) {
      const r = await s.call(m, p, b);
      assert.equal(r.status, 403, `${m} ${p}`);
      assert.equal(r.json.error, 'forbidden');
    }
    const p = JSON.parse(cli(srv.store, 'partner', 'get', 'seen.example', '--json').stdout).partners[0];
    assert.equal(p.description, '');
    assert.equal(cli(srv.store, 'partner', 'get', 'new.example').status, 3);
  });
});

// Each case: a partner the CLI refuses, as CLI arguments and as the API body.
const REFUSED = [
  ['SASL Required without TLS (row 5)', ['--tls', 'not-supported', '--sasl', 'required'], { tls: 'NotSupported', sasl: 'Required', dialback: true }, 'sasl', /SASL needs TLS/],
  ['SASL Required without TLS or dialback (row 6)', ['--tls', 'not-supported', '--sasl', 'required', '--dialback', 'false'], { tls: 'NotSupported', sasl: 'Required', dialback: false }, 'sasl', /SASL needs TLS/],
  ['SASL Optional without TLS (row 11)', ['--tls', 'not-supported', '--sasl', 'optional'], { tls: 'NotSupported', sasl: 'Optional', dialback: true }, 'sasl', /SASL needs TLS/],
  ['SASL Optional without TLS or dialback (row 12)', ['--tls', 'not-supported', '--sasl', 'optional', '--dialback', 'false'], { tls: 'NotSupported', sasl: 'Optional', dialback: false }, 'sasl', /SASL needs TLS/],
  ['no SASL and no dialback (row 14)', ['--tls', 'required', '--sasl', 'not-supported', '--dialback', 'false'], { tls: 'Required', sasl: 'NotSupported', dialback: false }, 'dialback', /SASL or dialback must be enabled/],
  ['no SASL and no dialback (row 16)', ['--tls', 'optional', '--sasl', 'not-supported', '--dialback', 'false'], { tls: 'Optional', sasl: 'NotSupported', dialback: false }, 'dialback', /SASL or dialback must be enabled/],
  ['no SASL and no dialback (row 18)', ['--tls', 'not-supported', '--sasl', 'not-supported', '--dialback', 'false'], { tls: 'NotSupported', sasl: 'NotSupported', dialback: false }, 'dialback', /SASL or dialback must be enabled/],
  ['unknown TLS value', ['--tls', 'sometimes'], { tls: 'sometimes' }, 'tls', /./],
  ['unknown partner type', ['--type', 'friendly'], { type: 'friendly' }, 'type', /./],
  ['negative connection limit', ['--connection-limit', '-3'], { connection_limit: -3 }, 'connection_limit', /./],
  ['connection limit above the maximum', ['--connection-limit', '100001'], { connection_limit: 100001 }, 'connection_limit', /./],
  ['bad proxy FQDN', ['--proxy-fqdn', 'bad host:99999'], { proxy_fqdn: 'bad host:99999' }, 'proxy_fqdn', /./],
  ['invalid additional domain', ['--additional-domains', 'ok.example,not_a.example'], { additional_domains: ['ok.example', 'not_a.example'] }, 'additional_domains', /./],
];

test('every partner the CLI refuses is refused by the API with the same message, and nothing is saved', async () => {
  await withServer(async (srv) => {
    const s = await signIn(srv.port, 'admin', ADMIN_PASSWORD);
    let i = 0;
    for (const [what, args, body, field, re] of REFUSED) {
      const domain = `refused${i++}.example`;
      const c = cli(srv.store, 'partner', 'new', domain, ...args);
      assert.ok(c.status === 1 || c.status === 2, `${what}: the CLI refuses (${c.status}: ${c.stderr})`);
      const r = await s.call('POST', '/api/partners', { domain, ...body });
      assert.equal(r.status, 422, `${what}: ${r.text}`);
      assert.equal(r.json.error, 'refused');
      assert.equal(r.json.field, field, what);
      assert.match(r.json.reason, re, what);
      // The same sentence as the CLI's; a value the CLI got as text and the API as a JSON
      // number may be quoted differently, so the comparison starts after the value.
      const sentence = r.json.reason.replace(/^("[^"]*"|-?\d+) /, '');
      if (c.status === 1)
        assert.ok(c.stderr.includes(sentence), `${what}: same message as the CLI\n  cli: ${c.stderr}\n  api: ${r.json.reason}`);
      assert.equal(cli(srv.store, 'partner', 'get', domain).status, 3, `${what}: nothing saved`);
    }
  });
});

test('invalid and clashing domains are refused', async () => {
  await withServer(async (srv) => {
    const s = await signIn(srv.port, 'admin', ADMIN_PASSWORD);
    const long = 'a'.repeat(63) + '.' + 'b'.repeat(63) + '.' + 'c'.repeat(63) + '.' + 'd'.repeat(61) + '.x'; // 254
    for (const d of ['', 'exa mple.com', '-bad.example', long, 'a..b', 'x'.repeat(64) + '.example']) {
      const r = await s.call('POST', '/api/partners', { domain: d, dialback: false });
      assert.equal(r.status, 422, `domain ${JSON.stringify(d).slice(0, 40)}: ${r.text}`);
      assert.equal(r.json.field, 'domain');
    }
    // IDN is normalised to A-labels, as by the CLI.
    let r = await s.call('POST', '/api/partners', { domain: 'BÜCHER.example.', dialback: false });
    assert.equal(r.status, 201, r.text);
    assert.equal(r.json.partner.domain, 'xn--bcher-kva.example');
    r = await s.call('POST', '/api/partners', { domain: 'fabrikam.com', additional_domains: ['research.fabrikam.com'], dialback: false });
    assert.equal(r.status, 201);
    // Same primary again, or a domain another partner already lists.
    r = await s.call('POST', '/api/partners', { domain: 'Fabrikam.com', dialback: false });
    assert.equal(r.status, 409);
    assert.equal(r.json.error, 'exists');
    r = await s.call('POST', '/api/partners', { domain: 'other.example', additional_domains: ['research.fabrikam.com'], dialback: false });
    assert.equal(r.status, 409);
    assert.match(r.json.reason, /fabrikam\.com/);
    r = await s.call('POST', '/api/partners', { domain: 'self.example', additional_domains: ['self.example'], dialback: false });
    assert.equal(r.status, 422);
    assert.equal(r.json.field, 'additional_domains');
    const many = Array.from({ length: 65 }, (_, k) => `d${k}.many.example`);
    r = await s.call('POST', '/api/partners', { domain: 'many.example', additional_domains: many, dialback: false });
    assert.equal(r.status, 422);
    r = await s.call('POST', '/api/partners', { domain: 'desc.example', description: 'x'.repeat(1025), dialback: false });
    assert.equal(r.status, 422);
    assert.equal(r.json.field, 'description');
    assert.equal(cli(srv.store, 'partner', 'get', 'other.example').status, 3);
    assert.equal(cli(srv.store, 'partner', 'get', 'many.example').status, 3);
  });
});

test('a warning configuration is saved and the warning returned; a valid one is saved quietly', async () => {
  await withServer(async (srv) => {
    const s = await signIn(srv.port, 'admin', ADMIN_PASSWORD);
    let r = await s.call('POST', '/api/partners', { domain: 'defaults.example' });
    assert.equal(r.status, 201);
    const w = r.json.messages.filter((m) => m.severity === 'warning');
    assert.equal(w.length, 1);
    assert.equal(w[0].field, 'dialback');
    assert.match(w[0].text, /dialback never operates/);
    assert.equal(r.json.partner.revision, 1);
    assert.equal(r.json.partner.type, 'PublicUnverified');
    r = await s.call('POST', '/api/partners', { domain: 'gmail.example', tls: 'NotSupported', sasl: 'NotSupported', dialback: true, keepalive: false });
    assert.equal(r.status, 201);
    assert.equal(r.json.messages.filter((m) => m.severity !== 'info').length, 0);
    const list = await s.call('GET', '/api/partners');
    assert.deepEqual(list.json.partners.map((p) => p.domain), ['defaults.example', 'gmail.example']);
    const filtered = await s.call('GET', '/api/partners?filter=gmail*');
    assert.deepEqual(filtered.json.partners.map((p) => p.domain), ['gmail.example']);
    assert.equal(cli(srv.store, 'partner', 'get', 'defaults.example').status, 0);
  });
});

test('an edit or a delete on a stale copy is refused with "changed by someone else"', async () => {
  await withServer(async (srv) => {
    const s = await signIn(srv.port, 'admin', ADMIN_PASSWORD);
    let r = await s.call('POST', '/api/partners', { domain: 'stale.example', dialback: false, description: 'first' });
    assert.equal(r.json.partner.revision, 1);
    r = await s.call('PUT', '/api/partners/stale.example', { description: 'second', revision: 1 });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.partner.revision, 2);
    // Someone else's change through the CLI moves the revision on.
    assert.equal(cli(srv.store, 'partner', 'set', 'stale.example', '--description', 'from the CLI').status, 0);
    r = await s.call('PUT', '/api/partners/stale.example', { description: 'lost update', revision: 2 });
    assert.equal(r.status, 409);
    assert.equal(r.json.error, 'stale');
    assert.equal(r.json.reason, 'changed by someone else');
    r = await s.call('DELETE', '/api/partners/stale.example?revision=2');
    assert.equal(r.status, 409);
    assert.equal(r.json.reason, 'changed by someone else');
    const p = (await s.call('GET', '/api/partners/stale.example')).json.partner;
    assert.equal(p.description, 'from the CLI');
    // The primary domain of an existing partner cannot be changed by an edit.
    r = await s.call('PUT', '/api/partners/stale.example', { domain: 'renamed.example', revision: p.revision });
    assert.equal(r.status, 422);
    assert.equal(r.json.field, 'domain');
    r = await s.call('PUT', '/api/partners/missing.example', { description: 'x' });
    assert.equal(r.status, 404);
    r = await s.call('DELETE', '/api/partners/stale.example?revision=' + p.revision);
    assert.equal(r.status, 200);
    assert.equal(cli(srv.store, 'partner', 'get', 'stale.example').status, 3);
  });
});

test('bad requests get 4xx and never a crash', async () => {
  await withServer(async (srv) => {
    const s = await signIn(srv.port, 'admin', ADMIN_PASSWORD);
    const bad = [
      ['{"domain": ', 400], ['{"domain": "x.example",}', 400], ['[1,2,3]', 400], ['"just a string"', 400],
      ['{"domain":"a.example"} trailing', 400], ['{"domain":"a\u0000.example"}', 400], ['', 400],
      ['['.repeat(100) + ']'.repeat(100), 400], ['{"domain":"x.example","domain":"y.example"}', 400],
    ];
    for (const [text, status] of bad) {
      const r = await s.call('POST', '/api/partners', text);
      assert.ok(r.status >= 400 && r.status < 500 && (r.status === status || r.status === 422), `${JSON.stringify(text).slice(0, 40)} -> ${r.status} ${r.text}`);
    }
    // Invalid UTF-8.
    let r = await s.call('POST', '/api/partners', Buffer.from([0x7b, 0x22, 0x64, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d]));
    assert.ok(r.status === 400 || r.status === 422, `invalid UTF-8 -> ${r.status}`);
    // Unknown members are named.
    r = await s.call('POST', '/api/partners', { domain: 'u.example', dialback: false, colour: 'blue' });
    assert.equal(r.status, 422);
    assert.equal(r.json.field, 'colour');
    r = await request(srv.port, 'POST', '/api/login', { body: { name: 'admin', password: ADMIN_PASSWORD, extra: 1 } });
    assert.equal(r.status, 422);
    // Wrong types.
    r = await s.call('POST', '/api/partners', { domain: 'types.example', dialback: 'perhaps' });
    assert.equal(r.status, 422);
    assert.equal(r.json.field, 'dialback');
    r = await s.call('POST', '/api/partners', { domain: 12 });
    assert.equal(r.status, 422);
    // Oversized bodies: declared, and sent in chunks without a length.
    r = await s.call('POST', '/api/partners', JSON.stringify({ domain: 'big.example', description: 'x'.repeat(200000) }));
    assert.equal(r.status, 413);
    r = await s.call('POST', '/api/partners', 'x'.repeat(70000), { 'Transfer-Encoding': 'chunked' });
    assert.equal(r.status, 413);
    // Not JSON.
    r = await s.call('POST', '/api/partners', 'domain=x.example', { 'Content-Type': 'application/x-www-form-urlencoded' });
    assert.equal(r.status, 415);
    // Wrong methods.
    for (const [m, p] of [['PUT', '/api/partners'], ['DELETE', '/api/partners'], ['GET', '/api/login'], ['GET', '/api/logout'],
      ['POST', '/api/gateway'], ['DELETE', '/api/audit'], ['POST', '/api/session'], ['PATCH', '/api/access'], ['OPTIONS', '/api/partners'],
      ['TRACE', '/api/partners'], ['POST', '/partners'], ['DELETE', '/']]) {
      r = await s.call(m, p, m === 'GET' || m === 'DELETE' || m === 'OPTIONS' || m === 'TRACE' ? undefined : {});
      assert.ok(r.status === 405, `${m} ${p} -> ${r.status}`);
      assert.ok(r.headers.allow, `${m} ${p} names the allowed methods`);
    }
    r = await s.call('GET', '/api/partners/a/b');
    assert.equal(r.status, 404);
    r = await s.call('GET', '/api/audit?limit=0');
    assert.equal(r.status, 422);
    r = await s.call('DELETE', '/api/partners/x.example?revision=abc');
    assert.equal(r.status, 422);
    // A header block far too large is refused by the HTTP layer.
    r = await s.call('GET', '/api/partners', undefined, { 'X-Padding': 'p'.repeat(100000) });
    assert.ok(r.status >= 400 && r.status < 500, `huge header -> ${r.status}`);
    assert.equal(cli(srv.store, 'partner', 'get').stdout.trim(), '', 'nothing was saved');
  });
});

test('gateway settings, hosted domains and access policy go through the same validation', async () => {
  await withServer(async (srv) => {
    const s = await signIn(srv.port, 'admin', ADMIN_PASSWORD);
    let r = await s.call('GET', '/api/gateway');
    assert.equal(r.status, 200);
    const g = r.json.gateway;
    assert.equal(g.connection_limit, 1000);
    assert.equal(g.partner_connection_limit, 20);
    assert.equal(g.dialback_passphrase, undefined, 'the passphrase is never sent');
    r = await s.call('PUT', '/api/gateway', { keepalive_interval: 120, revision: g.revision });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.gateway.keepalive_interval, 120);
    r = await s.call('PUT', '/api/gateway', { keepalive_interval: 150, revision: g.revision });
    assert.equal(r.status, 409);
    assert.equal(r.json.reason, 'changed by someone else');
    for (const [body, field] of [[{ connection_limit: 0 }, 'connection_limit'], [{ keepalive_interval: 'soon' }, 'keepalive_interval'],
      [{ stream_establishment_timeout: 1 }, 'stream_establishment_timeout'], [{ no_such_setting: 1 }, 'no_such_setting']]) {
      r = await s.call('PUT', '/api/gateway', body);
      assert.equal(r.status, 422, JSON.stringify(body));
      assert.equal(r.json.field, field);
    }
    const gw = JSON.parse(cli(srv.store, 'gateway', 'get', '--json').stdout).settings;
    assert.equal(gw.keepalive_interval, 120);
    assert.equal(gw.connection_limit, 1000);

    r = await s.call('POST', '/api/hosted', { domain: 'chat.example', route: 'component', secret: 'component-secret', cert_path: '/etc/fedgate/chat.pem', key_path: '/etc/fedgate/chat.key' });
    assert.equal(r.status, 201, r.text);
    assert.equal(r.json.hosted.secret, undefined, 'secrets are not sent back');
    r = await s.call('POST', '/api/hosted', { domain: 'chat.example', route: 'component', secret: 'x' });
    assert.equal(r.status, 409);
    r = await s.call('POST', '/api/hosted', { domain: 'bad domain', route: 'component', secret: 'x' });
    assert.equal(r.status, 422);
    r = await s.call('POST', '/api/hosted', { domain: 'nosecret.example', route: 'component' });
    assert.equal(r.status, 422);
    r = await s.call('POST', '/api/partners', { domain: 'chat.example', dialback: false });
    assert.equal(r.status, 409, 'a hosted domain cannot also be a partner');
    r = await s.call('PUT', '/api/hosted/chat.example', { enabled: false });
    assert.equal(r.status, 200);
    assert.equal(r.json.hosted.enabled, false);
    assert.equal((await s.call('GET', '/api/hosted')).json.hosted.length, 1);

    r = await s.call('PUT', '/api/access', { key: 'domain:chat.example', value: true });
    assert.equal(r.status, 200, r.text);
    r = await s.call('PUT', '/api/access', { key: 'user:alice@chat.example/res', value: true });
    assert.equal(r.status, 422);
    r = await s.call('PUT', '/api/access', { key: 'global', value: 'yes' });
    assert.equal(r.status, 422);
    assert.equal(r.json.field, 'value');
    r = await s.call('GET', '/api/access');
    assert.ok(r.json.access.some((e) => e.key === 'domain:chat.example' && e.value === true));
    r = await s.call('DELETE', '/api/access/' + encodeURIComponent('domain:chat.example'));
    assert.equal(r.status, 200);
    r = await s.call('DELETE', '/api/hosted/chat.example');
    assert.equal(r.status, 200);
    assert.equal(cli(srv.store, 'domain', 'get', 'chat.example').status, 3);
  });
});

test('the audit log names who changed what, and when', async () => {
  await withServer(async (srv) => {
    const s = await signIn(srv.port, 'admin', ADMIN_PASSWORD);
    const t0 = Date.now();
    await s.call('POST', '/api/partners', { domain: 'audited.example', dialback: false });
    await s.call('PUT', '/api/partners/audited.example', { description: 'now described' });
    await s.call('DELETE', '/api/partners/audited.example');
    const r = await s.call('GET', '/api/audit?since=' + (t0 - 1000));
    assert.equal(r.status, 200);
    const mine = r.json.audit.filter((e) => e.subject === 'audited.example');
    assert.equal(mine.length, 3);
    for (const e of mine) {
      assert.equal(e.actor, 'web:admin');
      assert.ok(e.time_ms >= t0 - 1000 && e.time_ms <= Date.now() + 1000);
    }
    assert.equal(mine[0].before, null);
    assert.equal(mine[0].after.domain, 'audited.example');
    assert.equal(mine[1].after.description, 'now described');
    assert.equal(mine[2].after, null);
    const limited = await s.call('GET', '/api/audit?limit=1');
    assert.equal(limited.json.audit.length, 1);
    assert.equal(limited.json.audit[0].subject, 'audited.example');
  });
});

test('HTTPS with --cert and --key; the session cookie is then Secure', async (t) => {
  const { mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { spawnSync } = await import('node:child_process');
  const https = await import('node:https');
  const dir = mkdtempSync(join(tmpdir(), 'fedgate-tls-'));
  const cert = join(dir, 'cert.pem'), key = join(dir, 'key.pem');
  const gen = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=127.0.0.1'], { encoding: 'utf8' });
  if (gen.status !== 0) {
    t.skip('openssl cannot make a test certificate');
    rmSync(dir, { recursive: true, force: true });
    return;
  }
  const srv = await startServer({ args: ['--cert', cert, '--key', key], https: true });
  try {
    const res = await new Promise((resolveReq, reject) => {
      const body = JSON.stringify({ name: 'admin', password: ADMIN_PASSWORD });
      const req = https.request({ host: '127.0.0.1', port: srv.port, method: 'POST', path: '/api/login', rejectUnauthorized: false,
        headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) } }, (r) => {
        r.resume();
        r.on('end', () => resolveReq(r));
      });
      req.on('error', reject);
      req.end(body);
    });
    assert.equal(res.statusCode, 200);
    assert.match(res.headers['set-cookie'][0], /; Secure/);
    // Plain HTTP to the TLS port gets no answer a browser would accept.
    const plain = await request(srv.port, 'GET', '/api/session').catch(() => null);
    assert.ok(!plain || plain.status >= 400 || plain.status === undefined);
  } finally {
    await srv.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('garbage on the wire gets an error or a closed connection, never a crash', async () => {
  const net = await import('node:net');
  await withServer(async (srv) => {
    const junk = [
      'GARBAGE\r\n\r\n',
      'GET /api/partners HTTP/9.9\r\nHost: x\r\n\r\n',
      'POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n',
      'POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n',
      'POST /api/login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\nzz\r\n',
      'GET /' + '%'.repeat(5000) + ' HTTP/1.1\r\nHost: x\r\n\r\n',
      'GET /api/partners/%00%ff HTTP/1.1\r\nHost: x\r\n\r\n',
      '\x00\x01\x02\x03\xff\xfe\r\n\r\n',
    ];
    for (const j of junk) {
      const answer = await new Promise((resolveSock) => {
        const sock = net.connect(srv.port, '127.0.0.1');
        let got = '';
        sock.setTimeout(3000, () => sock.destroy());
        sock.on('data', (d) => { got += d; });
        sock.on('close', () => resolveSock(got));
        sock.on('error', () => resolveSock(got));
        sock.end(Buffer.from(j, 'latin1'));
      });
      const m = answer.match(/^HTTP\/1\.[01] (\d{3})/);
      assert.ok(!m || Number(m[1]) >= 400, `${JSON.stringify(j).slice(0, 50)} -> ${answer.slice(0, 40)}`);
      assert.ok(srv.alive());
    }
  });
});

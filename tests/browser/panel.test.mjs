// The control panel in a real browser (Debian's chromium driven by playwright-core): the seed's
// steps end to end, edit, delete, the viewer role, stale edits, sign-in and CSRF. The store is
// read back through the CLI to prove what was (not) saved. Each test runs its own
// `fedgate-admin serve` on a free loopback port against a throw-away store.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { startServer, cli, ADMIN_PASSWORD, VIEWER_PASSWORD } from '../api/server.mjs';

const ARTIFACTS = new URL('./artifacts/', import.meta.url).pathname;
mkdirSync(ARTIFACTS, { recursive: true });
let browser;
let profile;

before(async () => {
  profile = mkdtempSync(join(tmpdir(), 'fedgate-chromium-'));
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    // playwright gives every launch a fresh temporary profile (--user-data-dir) of its own.
    env: { ...process.env, HOME: profile },
  });
});

after(async () => {
  await browser?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

async function withPanel(fn) {
  const srv = await startServer();
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  page.setDefaultTimeout(10000);
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  try {
    await fn({ srv, page, context });
    assert.deepEqual(errors, [], 'no script errors on the page');
  } finally {
    await context.close();
    await srv.stop();
  }
}

async function signIn(page, srv, name, password) {
  await page.goto(srv.url + '/');
  assert.equal(new URL(page.url()).pathname, '/login', 'the panel asks to sign in first');
  await page.getByLabel('Account name').fill(name);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL('**/partners');
  await page.getByRole('heading', { name: 'XMPP Federated Partners' }).waitFor();
}

function partnerJson(store, domain) {
  const r = cli(store, 'partner', 'get', domain, '--json');
  if (r.status !== 0) return null;
  return JSON.parse(r.stdout).partners[0];
}

const row = (page, domain) => page.locator('#partner-table tbody tr', { has: page.getByRole('cell', { name: domain, exact: true }) });

test('seed steps: sign in, open XMPP Federated Partners, a refused SASL-without-TLS commit, a valid one and a warning one', async () => {
  await withPanel(async ({ srv, page }) => {
    await signIn(page, srv, 'admin', ADMIN_PASSWORD);
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Federation and External Access' }).click();
    await page.getByRole('link', { name: 'XMPP Federated Partners' }).click();
    await page.getByRole('heading', { name: 'XMPP Federated Partners' }).waitFor();
    await page.getByText('No XMPP federated partners yet').waitFor();

    await page.getByRole('button', { name: 'New', exact: true }).click();
    await page.getByRole('heading', { name: 'New XMPP Federated Partner' }).waitFor();
    await page.getByLabel('Primary domain').fill('fabrikam.com');
    await page.getByLabel('Description').fill('Fabrikam, Inc. Contact: xmpp-admin@fabrikam.com');
    const extra = page.getByLabel('Additional domains');
    await extra.fill('research.fabrikam.com');
    await page.getByRole('button', { name: 'Add', exact: true }).click();
    await extra.fill('typo.fabrikam.con');
    await page.getByRole('button', { name: 'Add', exact: true }).click();
    await page.getByRole('button', { name: 'Remove typo.fabrikam.con' }).click();
    await page.getByLabel('Partner type').selectOption({ label: 'Federated' });
    await page.getByLabel('TLS negotiation').selectOption({ label: 'Not supported' });
    await page.getByLabel('SASL negotiation').selectOption({ label: 'Required' });
    await page.getByLabel('Dialback negotiation').selectOption({ label: 'True' });
    await page.getByLabel('Connection limit').fill('10');
    // Every field has a short help text tied to it.
    for (const label of ['Primary domain', 'Description', 'Partner type', 'TLS negotiation', 'SASL negotiation', 'Dialback negotiation', 'Keepalive', 'Connection limit', 'Proxy FQDN']) {
      const described = await page.getByLabel(label).getAttribute('aria-describedby');
      const help = await page.locator('#' + described.split(' ')[0]).innerText();
      assert.ok(help.length > 20, `${label} has a help text`);
    }
    await page.getByRole('button', { name: 'Commit' }).click();

    // Refused: the warning that SASL needs TLS, nothing saved, the form keeps what was typed.
    const alert = page.getByRole('alert').filter({ hasText: 'SASL needs TLS' });
    await alert.waitFor();
    assert.match(await alert.innerText(), /Not saved/);
    assert.equal(await page.getByLabel('SASL negotiation').getAttribute('aria-invalid'), 'true');
    assert.equal(new URL(page.url()).pathname, '/partners/new');
    assert.equal(await page.getByLabel('Primary domain').inputValue(), 'fabrikam.com');
    assert.equal(await page.getByLabel('Description').inputValue(), 'Fabrikam, Inc. Contact: xmpp-admin@fabrikam.com');
    assert.equal(await page.getByLabel('TLS negotiation').inputValue(), 'NotSupported');
    assert.equal(await page.getByLabel('SASL negotiation').inputValue(), 'Required');
    assert.equal(await page.getByLabel('Connection limit').inputValue(), '10');
    await page.getByRole('button', { name: 'Remove research.fabrikam.com' }).waitFor();
    assert.equal(cli(srv.store, 'partner', 'get', 'fabrikam.com').status, 3, 'the CLI finds nothing saved');
    await page.screenshot({ path: ARTIFACTS + 'partner-form-sasl-warning.png' });
    await page.screenshot({ path: ARTIFACTS + 'partner-form-sasl-warning-full.png', fullPage: true });

    // Valid: SASL Not supported with dialback (the matrix's row 17) is saved and listed.
    await page.getByLabel('SASL negotiation').selectOption({ label: 'Not supported' });
    await page.getByRole('button', { name: 'Commit' }).click();
    await page.waitForURL('**/partners');
    await page.getByRole('status').filter({ hasText: 'Saved fabrikam.com' }).waitFor();
    const r = row(page, 'fabrikam.com');
    await r.waitFor();
    const cells = await r.getByRole('cell').allInnerTexts();
    assert.deepEqual(cells.slice(1), ['fabrikam.com', 'Federated', 'Not supported', 'Not supported', 'True', 'research.fabrikam.com',
      'Fabrikam, Inc. Contact: xmpp-admin@fabrikam.com']);
    const saved = partnerJson(srv.store, 'fabrikam.com');
    assert.equal(saved.type, 'Federated');
    assert.equal(saved.tls, 'NotSupported');
    assert.equal(saved.sasl, 'NotSupported');
    assert.equal(saved.dialback, true);
    assert.equal(saved.connection_limit, 10);
    assert.deepEqual(saved.additional_domains, ['research.fabrikam.com']);

    // A warning configuration (Lync's defaults: matrix row 1) is saved and the warning shown.
    await page.getByRole('button', { name: 'New', exact: true }).click();
    await page.getByLabel('Primary domain').fill('contoso.com');
    await page.getByLabel('Partner type').selectOption({ label: 'Public verified' });
    await page.getByRole('button', { name: 'Commit' }).click();
    await page.waitForURL('**/partners');
    const warn = page.getByRole('status').filter({ hasText: 'with a warning' });
    await warn.waitFor();
    assert.match(await warn.innerText(), /dialback never operates/);
    assert.equal(partnerJson(srv.store, 'contoso.com').type, 'PublicVerified');
    await row(page, 'contoso.com').waitFor();

    // The filter box narrows the list.
    await page.getByLabel('Filter').fill('contoso');
    assert.equal(await row(page, 'fabrikam.com').isVisible(), false);
    assert.equal(await row(page, 'contoso.com').isVisible(), true);
    await page.getByLabel('Filter').fill('');
    assert.equal(await row(page, 'fabrikam.com').isVisible(), true);
    await page.screenshot({ path: ARTIFACTS + 'partner-list.png' });
  });
});

test('edit a partner: select a row, Edit, change it, Commit', async () => {
  await withPanel(async ({ srv, page }) => {
    assert.equal(cli(srv.store, 'partner', 'new', 'edit.example', '--description', 'before', '--dialback', 'false').status, 0);
    await signIn(page, srv, 'admin', ADMIN_PASSWORD);
    assert.equal(await page.getByRole('button', { name: 'Edit' }).isDisabled(), true, 'Edit needs a selected row');
    await row(page, 'edit.example').click();
    await page.getByRole('button', { name: 'Edit' }).click();
    await page.getByRole('heading', { name: /Edit XMPP Federated Partner/ }).waitFor();
    assert.equal(await page.getByLabel('Primary domain').getAttribute('readonly'), '');
    await page.getByLabel('Description').fill('after the edit');
    await page.getByLabel('TLS negotiation').selectOption({ label: 'Optional' });
    await page.getByLabel('SASL negotiation').selectOption({ label: 'Not supported' });
    await page.getByLabel('Dialback negotiation').selectOption({ label: 'True' });
    await page.getByLabel('Proxy FQDN').fill('xmpp-proxy.edit.example:5269');
    await page.getByRole('button', { name: 'Commit' }).click();
    await page.waitForURL('**/partners');
    await page.getByRole('status').filter({ hasText: 'Saved edit.example' }).waitFor();
    const cells = await row(page, 'edit.example').getByRole('cell').allInnerTexts();
    assert.equal(cells[3], 'Optional');
    assert.equal(cells[7], 'after the edit');
    const p = partnerJson(srv.store, 'edit.example');
    assert.equal(p.description, 'after the edit');
    assert.equal(p.tls, 'Optional');
    assert.equal(p.revision, 2);
    assert.equal(p.proxy_fqdn, 'xmpp-proxy.edit.example:5269');

    // Cancel leaves the partner as it was.
    await row(page, 'edit.example').click();
    await page.getByRole('button', { name: 'Edit' }).click();
    await page.getByLabel('Description').fill('never saved');
    await page.getByRole('button', { name: 'Cancel' }).click();
    await page.waitForURL('**/partners');
    assert.equal(partnerJson(srv.store, 'edit.example').description, 'after the edit');
  });
});

test('delete a partner after confirming', async () => {
  await withPanel(async ({ srv, page }) => {
    assert.equal(cli(srv.store, 'partner', 'new', 'gone.example', '--dialback', 'false').status, 0);
    assert.equal(cli(srv.store, 'partner', 'new', 'kept.example', '--dialback', 'false').status, 0);
    await signIn(page, srv, 'admin', ADMIN_PASSWORD);
    await page.getByRole('radio', { name: 'Select gone.example' }).check();
    await page.getByRole('button', { name: 'Delete' }).click();
    const dialog = page.getByRole('dialog', { name: 'Delete XMPP federated partner' });
    await dialog.waitFor();
    assert.match(await dialog.innerText(), /gone\.example/);
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    assert.ok(partnerJson(srv.store, 'gone.example'), 'Cancel keeps it');
    await page.getByRole('button', { name: 'Delete' }).click();
    await dialog.getByRole('button', { name: 'Delete' }).click();
    await page.getByRole('status').filter({ hasText: 'Deleted gone.example' }).waitFor();
    assert.equal(await row(page, 'gone.example').count(), 0);
    assert.equal(await row(page, 'kept.example').count(), 1);
    assert.equal(cli(srv.store, 'partner', 'get', 'gone.example').status, 3);
    assert.ok(partnerJson(srv.store, 'kept.example'));
  });
});

test('the viewer role can look but every change is refused', async () => {
  await withPanel(async ({ srv, page }) => {
    assert.equal(cli(srv.store, 'partner', 'new', 'look.example', '--description', 'as is', '--dialback', 'false').status, 0);
    await signIn(page, srv, 'viewer', VIEWER_PASSWORD);
    await page.getByText('Read-only: your account has the viewer role').first().waitFor();
    assert.equal(await page.getByRole('button', { name: 'New', exact: true }).isDisabled(), true);
    await row(page, 'look.example').click();
    assert.equal(await page.getByRole('button', { name: 'Delete' }).isDisabled(), true);
    await page.getByRole('button', { name: 'View' }).click();
    await page.getByRole('heading', { name: /View XMPP Federated Partner/ }).waitFor();
    assert.equal(await page.getByRole('button', { name: 'Commit' }).isDisabled(), true);
    assert.equal(await page.getByLabel('Description').isDisabled(), true);
    // Even a request made by hand with a valid session and CSRF token is refused.
    const results = await page.evaluate(async () => {
      const s = await (await fetch('/api/session')).json();
      const send = (method, path, body) => fetch(path, { method, headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': s.csrf },
        body: body ? JSON.stringify(body) : undefined }).then(async (r) => [r.status, (await r.json()).error]);
      return [
        await send('POST', '/api/partners', { domain: 'sneaky.example', dialback: false }),
        await send('PUT', '/api/partners/look.example', { description: 'changed' }),
        await send('DELETE', '/api/partners/look.example'),
        await send('PUT', '/api/gateway', { connection_limit: 1 }),
        await send('PUT', '/api/access', { key: 'global', value: true }),
      ];
    });
    for (const [status, error] of results) {
      assert.equal(status, 403);
      assert.equal(error, 'forbidden');
    }
    assert.equal(partnerJson(srv.store, 'look.example').description, 'as is');
    assert.equal(cli(srv.store, 'partner', 'get', 'sneaky.example').status, 3);
  });
});

test('an edit made on a stale copy is refused with "changed by someone else"', async () => {
  await withPanel(async ({ srv, page }) => {
    assert.equal(cli(srv.store, 'partner', 'new', 'shared.example', '--description', 'v1', '--dialback', 'false').status, 0);
    await signIn(page, srv, 'admin', ADMIN_PASSWORD);
    await page.goto(srv.url + '/partners/edit?domain=shared.example');
    await page.getByLabel('Description').waitFor();
    assert.equal(await page.getByLabel('Description').inputValue(), 'v1');
    // Another administrator changes the partner meanwhile.
    assert.equal(cli(srv.store, 'partner', 'set', 'shared.example', '--description', 'changed elsewhere').status, 0);
    await page.getByLabel('Description').fill('my edit');
    await page.getByRole('button', { name: 'Commit' }).click();
    const alert = page.getByRole('alert').filter({ hasText: 'changed by someone else' });
    await alert.waitFor();
    assert.equal(await page.getByLabel('Description').inputValue(), 'my edit', 'the form keeps what was typed');
    assert.equal(partnerJson(srv.store, 'shared.example').description, 'changed elsewhere', 'not silently overwritten');
  });
});

test('sign-in is required for every page and API call; the session cookie is out of reach of scripts', async () => {
  await withPanel(async ({ srv, page, context }) => {
    for (const p of ['/', '/partners', '/partners/new', '/partners/edit?domain=x.example', '/gateway', '/hosted', '/access', '/audit']) {
      await page.goto(srv.url + p);
      assert.equal(new URL(page.url()).pathname, '/login', `${p} needs a session`);
    }
    const statuses = await page.evaluate(async () => {
      const out = [];
      for (const p of ['/api/session', '/api/partners', '/api/gateway', '/api/hosted', '/api/access', '/api/audit', '/app.js'])
        out.push((await fetch(p)).status);
      return out;
    });
    assert.deepEqual(statuses, [401, 401, 401, 401, 401, 401, 401]);
    // Wrong password: an error, no session.
    await page.getByLabel('Account name').fill('admin');
    await page.getByLabel('Password').fill('not-the-password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').filter({ hasText: 'Wrong account name or password' }).waitFor();
    assert.equal((await context.cookies()).length, 0);

    await signIn(page, srv, 'admin', ADMIN_PASSWORD);
    const cookies = await context.cookies();
    assert.equal(cookies.length, 1);
    assert.equal(cookies[0].httpOnly, true);
    assert.equal(cookies[0].sameSite, 'Strict');
    assert.equal(await page.evaluate(() => document.cookie), '');
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL('**/login');
    await page.goto(srv.url + '/partners');
    assert.equal(new URL(page.url()).pathname, '/login', 'signed out');
  });
});

test('every change needs the CSRF token', async () => {
  await withPanel(async ({ srv, page }) => {
    await signIn(page, srv, 'admin', ADMIN_PASSWORD);
    const r = await page.evaluate(async () => {
      const s = await (await fetch('/api/session')).json();
      const post = (headers) => fetch('/api/partners', { method: 'POST', headers: { 'Content-Type': 'application/json', ...headers },
        body: JSON.stringify({ domain: 'csrf.example', dialback: false }) }).then(async (x) => [x.status, (await x.json()).error]);
      return { none: await post({}), wrong: await post({ 'X-CSRF-Token': 'x'.repeat(43) }), right: await post({ 'X-CSRF-Token': s.csrf }) };
    });
    assert.deepEqual(r.none, [403, 'csrf']);
    assert.deepEqual(r.wrong, [403, 'csrf']);
    assert.equal(r.right[0], 201);
    assert.ok(partnerJson(srv.store, 'csrf.example'));
  });
});

test('gateway settings, hosted domains, access policy and the audit log pages', async () => {
  await withPanel(async ({ srv, page }) => {
    await signIn(page, srv, 'admin', ADMIN_PASSWORD);
    await page.getByRole('link', { name: 'XMPP Gateway Settings' }).click();
    await page.getByRole('heading', { name: 'XMPP Gateway Settings' }).waitFor();
    assert.equal(await page.getByLabel('Keepalive interval').inputValue(), '300');
    await page.getByLabel('Keepalive interval').fill('240');
    await page.getByLabel('Connection limit', { exact: true }).fill('0');
    await page.getByRole('button', { name: 'Commit' }).click();
    await page.getByRole('alert').filter({ hasText: 'Not saved' }).waitFor();
    await page.getByLabel('Connection limit', { exact: true }).fill('500');
    await page.getByRole('button', { name: 'Commit' }).click();
    await page.getByRole('status').filter({ hasText: 'Saved the gateway settings' }).waitFor();
    const gw = JSON.parse(cli(srv.store, 'gateway', 'get', '--json').stdout).settings;
    assert.equal(gw.keepalive_interval, 240);
    assert.equal(gw.connection_limit, 500);

    await page.getByRole('link', { name: 'Hosted Domains' }).click();
    await page.getByRole('heading', { name: 'Hosted Domains' }).waitFor();
    await page.getByRole('textbox', { name: 'Domain', exact: true }).fill('chat.example');
    await page.getByLabel('Route').selectOption({ label: 'Component (XEP-0114)' });
    await page.getByLabel('Component secret').fill('a component secret');
    await page.getByRole('button', { name: 'Commit' }).click();
    await page.getByRole('status').filter({ hasText: 'Saved chat.example' }).waitFor();
    await page.getByRole('cell', { name: 'chat.example', exact: true }).waitFor();
    assert.equal(cli(srv.store, 'domain', 'get', 'chat.example').status, 0);

    await page.getByRole('link', { name: 'External Access Policy' }).click();
    await page.getByRole('heading', { name: 'External Access Policy' }).waitFor();
    await page.getByLabel('Scope').selectOption({ label: 'Hosted domain' });
    await page.getByLabel('Domain or user').fill('chat.example');
    await page.getByLabel('Enable communications with XMPP federated users').selectOption({ label: 'True' });
    await page.getByRole('button', { name: 'Commit' }).click();
    await page.getByRole('cell', { name: 'Hosted domain chat.example' }).waitFor();

    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Audit Log' }).click();
    await page.getByRole('heading', { name: 'Audit Log' }).waitFor();
    const text = await page.locator('#audit-table').innerText();
    assert.match(text, /web:admin/);
    assert.match(text, /chat\.example/);
    assert.match(text, /keepalive_interval: 300 → 240/);
    await page.screenshot({ path: ARTIFACTS + 'audit-log.png' });
  });
});

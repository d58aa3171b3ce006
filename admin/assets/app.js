'use strict';
// fedgate Control Panel. Plain JavaScript, no build step: the server embeds this file as is.
// Every change goes through the JSON API, which validates with the same code as the CLI; this
// page only shows what the server decides (it never validates on its own).

const state = { user: '', role: 'viewer', csrf: '', partners: [], selected: null, notice: null };

const LABELS = {
  type: { Federated: 'Federated', PublicVerified: 'Public verified', PublicUnverified: 'Public unverified' },
  neg: { Required: 'Required', Optional: 'Optional', NotSupported: 'Not supported' },
};

// ---- small DOM helpers (text is always set as text, never parsed as HTML) ----

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function main() { return document.getElementById('main'); }
// Replaces the content area; null entries (an absent banner or notice) are left out.
function show(...nodes) {
  main().replaceChildren(...nodes.flat().filter((n) => n !== null && n !== undefined && n !== false));
}
function isAdmin() { return state.role === 'admin'; }

// ---- API ----

async function api(method, path, body) {
  const opts = { method, credentials: 'same-origin', headers: {} };
  if (method !== 'GET') opts.headers['X-CSRF-Token'] = state.csrf;
  if (body !== undefined) {
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, opts);
  } catch (e) {
    return { status: 0, data: { reason: 'The control panel cannot be reached.' } };
  }
  if (res.status === 401) {
    location.assign('/login?next=' + encodeURIComponent(location.pathname + location.search));
    return new Promise(() => {});
  }
  let data = {};
  try { data = await res.json(); } catch (e) { /* empty body */ }
  return { status: res.status, data };
}

// ---- notices ----

function noticeBox(kind, title, lines) {
  const box = h('div', { class: 'notice notice-' + kind, role: kind === 'error' ? 'alert' : 'status' });
  if (title) box.append(h('strong', { text: title }));
  if (lines && lines.length) box.append(h('ul', null, lines.map((l) => h('li', { text: l }))));
  return box;
}

function messagesOf(data, severity) {
  return (data.messages || []).filter((m) => !severity || m.severity === severity);
}

function describeFailure(res, what) {
  const d = res.data || {};
  if (res.status === 403 && d.error === 'forbidden')
    return { title: 'Not allowed: ' + d.reason + '.', lines: [] };
  if (res.status === 403)
    return { title: 'Refused: ' + (d.reason || 'forbidden') + '.', lines: [] };
  if (d.error === 'stale')
    return {
      title: what + ' was changed by someone else since this form was opened. Nothing was saved.',
      lines: ['Cancel and open it again to see the current settings, then repeat your change.'],
    };
  const errs = messagesOf(d, 'error').map((m) => m.text);
  if (res.status === 422)
    return { title: 'Not saved: ' + (d.reason || 'the change was refused') + (d.reason && !/[.!]$/.test(d.reason) ? '.' : ''),
             lines: errs.length > 1 ? errs.slice(1) : [] };
  if (res.status === 409)
    return { title: 'Not saved: ' + (d.reason || 'already exists') + '.', lines: errs.slice(1) };
  return { title: 'Not saved: ' + (d.reason || ('the server answered HTTP ' + res.status)) + '.', lines: [] };
}

// ---- routing ----

const routes = {
  '/': viewHome,
  '/partners': viewPartners,
  '/partners/new': () => viewPartnerForm(null),
  '/partners/edit': () => viewPartnerForm(new URLSearchParams(location.search).get('domain')),
  '/gateway': viewGateway,
  '/hosted': viewHosted,
  '/access': viewAccess,
  '/audit': viewAudit,
};

function go(path) {
  history.pushState(null, '', path);
  render();
}

function linkTo(path, text, attrs) {
  return h('a', Object.assign({ href: path, onclick: (e) => { e.preventDefault(); go(path); } }, attrs || {}), text);
}

function markNav() {
  const p = location.pathname;
  const section = p === '/' ? 'home' : p === '/audit' ? 'audit' : 'federation';
  for (const a of document.querySelectorAll('.sidenav a')) {
    if (a.dataset.nav === section) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

async function render() {
  markNav();
  const view = routes[location.pathname] || viewHome;
  show(h('p', { class: 'muted', text: 'Loading…' }));
  await view();
}

function federationTabs(current) {
  const tabs = [
    ['/partners', 'XMPP Federated Partners'],
    ['/gateway', 'XMPP Gateway Settings'],
    ['/hosted', 'Hosted Domains'],
    ['/access', 'External Access Policy'],
  ];
  return h('nav', { class: 'tabs', 'aria-label': 'Federation and External Access' },
    tabs.map(([p, t]) => linkTo(p, t, p === current ? { 'aria-current': 'page', class: 'active' } : null)));
}

function pageHead(title, intro) {
  return [h('h1', { text: title }), intro ? h('p', { class: 'intro', text: intro }) : null];
}

function takeNotice() {
  const n = state.notice;
  state.notice = null;
  return n;
}

function readOnlyBanner() {
  return isAdmin() ? null : noticeBox('info', 'Read-only: your account has the viewer role. You can look at everything; every change is refused.');
}

// ---- Home ----

async function viewHome() {
  const [p, hd, g, au] = await Promise.all([api('GET', '/api/partners'), api('GET', '/api/hosted'),
    api('GET', '/api/gateway'), api('GET', '/api/audit?limit=5')]);
  const partners = (p.data.partners || []).length;
  const hosted = (hd.data.hosted || []).length;
  const gw = g.data.gateway || {};
  const recent = (au.data.audit || []).slice().reverse();
  show(
    ...pageHead('Home', 'fedgate lets your XMPP domains federate only with the partners listed here, each with its own TLS, SASL and dialback rules.'),
    readOnlyBanner(),
    h('div', { class: 'cards' },
      h('section', { class: 'card' }, h('h2', { text: 'XMPP federated partners' }), h('p', { class: 'big', text: String(partners) }), linkTo('/partners', 'Manage partners')),
      h('section', { class: 'card' }, h('h2', { text: 'Hosted domains' }), h('p', { class: 'big', text: String(hosted) }), linkTo('/hosted', 'Manage hosted domains')),
      h('section', { class: 'card' }, h('h2', { text: 'Gateway limits' }),
        h('p', { text: `${gw.connection_limit ?? '–'} connections in all, ${gw.partner_connection_limit ?? '–'} per partner` }),
        linkTo('/gateway', 'Gateway settings'))),
    h('h2', { text: 'Recent changes' }),
    recent.length ? auditTable(recent) : h('p', { class: 'muted', text: 'No changes yet.' }));
}

// ---- XMPP Federated Partners: list ----

function partnerRow(p) {
  const selected = state.selected === p.domain;
  const radio = h('input', { type: 'radio', name: 'partner-select', value: p.domain, 'aria-label': 'Select ' + p.domain, checked: selected });
  const tr = h('tr', { 'data-domain': p.domain, class: selected ? 'selected' : null, 'aria-selected': selected ? 'true' : 'false' },
    h('td', { class: 'sel' }, radio),
    h('td', { class: 'domain' }, p.domain),
    h('td', null, LABELS.type[p.type] || p.type),
    h('td', null, LABELS.neg[p.tls] || p.tls),
    h('td', null, LABELS.neg[p.sasl] || p.sasl),
    h('td', null, p.dialback ? 'True' : 'False'),
    h('td', { class: 'wrap' }, (p.additional_domains || []).join(', ')),
    h('td', { class: 'wrap desc' }, p.description || ''));
  tr.addEventListener('click', () => selectPartner(p.domain));
  tr.addEventListener('dblclick', () => { selectPartner(p.domain); go('/partners/edit?domain=' + encodeURIComponent(p.domain)); });
  return tr;
}

function selectPartner(domain) {
  state.selected = domain;
  for (const tr of document.querySelectorAll('#partner-table tbody tr')) {
    const on = tr.dataset.domain === domain;
    tr.classList.toggle('selected', on);
    tr.setAttribute('aria-selected', on ? 'true' : 'false');
    const r = tr.querySelector('input[type=radio]');
    if (r) r.checked = on;
  }
  updatePartnerButtons();
}

function updatePartnerButtons() {
  const has = !!state.partners.find((p) => p.domain === state.selected);
  const edit = document.getElementById('btn-edit');
  const del = document.getElementById('btn-delete');
  if (edit) edit.disabled = !has;
  if (del) del.disabled = !has || !isAdmin();
}

function filterPartners() {
  const q = (document.getElementById('partner-filter').value || '').trim().toLowerCase();
  let shown = 0;
  for (const tr of document.querySelectorAll('#partner-table tbody tr[data-domain]')) {
    const ok = !q || tr.textContent.toLowerCase().includes(q);
    tr.hidden = !ok;
    if (ok) shown++;
  }
  document.getElementById('partner-count').textContent =
    `${shown} of ${state.partners.length} partner${state.partners.length === 1 ? '' : 's'}`;
}

async function viewPartners() {
  const res = await api('GET', '/api/partners');
  state.partners = res.data.partners || [];
  if (!state.partners.find((p) => p.domain === state.selected)) state.selected = null;
  const notice = takeNotice();
  const rows = state.partners.map(partnerRow);
  const table = h('table', { id: 'partner-table', class: 'grid', 'aria-label': 'XMPP federated partners' },
    h('thead', null, h('tr', null,
      h('th', { class: 'sel' }, h('span', { class: 'visually-hidden', text: 'Select' })),
      h('th', { scope: 'col', text: 'Primary domain' }), h('th', { scope: 'col', text: 'Partner type' }),
      h('th', { scope: 'col', text: 'TLS' }), h('th', { scope: 'col', text: 'SASL' }),
      h('th', { scope: 'col', text: 'Dialback' }), h('th', { scope: 'col', text: 'Additional domains' }),
      h('th', { scope: 'col', text: 'Description' }))),
    h('tbody', null, rows.length ? rows : h('tr', null, h('td', { colspan: 8, class: 'empty', text: 'No XMPP federated partners yet. Click New to add one.' }))));
  show(
    federationTabs('/partners'),
    ...pageHead('XMPP Federated Partners', 'Only the XMPP domains listed here may federate with your users. Each partner says how its servers must authenticate.'),
    readOnlyBanner(),
    notice ? noticeBox(notice.kind, notice.title, notice.lines) : null,
    res.status !== 200 ? noticeBox('error', 'The partner list could not be read: ' + (res.data.reason || res.status)) : null,
    h('div', { class: 'toolbar', role: 'toolbar', 'aria-label': 'Partner actions' },
      h('button', { type: 'button', id: 'btn-new', class: 'primary', disabled: !isAdmin(), onclick: () => go('/partners/new') }, 'New'),
      h('button', { type: 'button', id: 'btn-edit', disabled: true, onclick: () => state.selected && go('/partners/edit?domain=' + encodeURIComponent(state.selected)) }, isAdmin() ? 'Edit' : 'View'),
      h('button', { type: 'button', id: 'btn-delete', class: 'danger', disabled: true, onclick: deleteSelected }, 'Delete'),
      h('button', { type: 'button', onclick: () => render() }, 'Refresh'),
      h('span', { class: 'spacer' }),
      h('label', { for: 'partner-filter', class: 'inline-label' }, 'Filter'),
      h('input', { id: 'partner-filter', type: 'search', placeholder: 'Domain, type or description', oninput: filterPartners })),
    h('div', { class: 'table-wrap' }, table),
    h('p', { id: 'partner-count', class: 'muted small' }));
  filterPartners();
  updatePartnerButtons();
}

function confirmDialog(title, text, okLabel) {
  const dlg = document.getElementById('confirm');
  document.getElementById('confirm-title').textContent = title;
  document.getElementById('confirm-text').textContent = text;
  document.getElementById('confirm-ok').textContent = okLabel;
  return new Promise((resolve) => {
    dlg.addEventListener('close', () => resolve(dlg.returnValue === 'ok'), { once: true });
    dlg.returnValue = '';
    dlg.showModal();
    document.getElementById('confirm-cancel').focus();
  });
}

async function deleteSelected() {
  const p = state.partners.find((x) => x.domain === state.selected);
  if (!p) return;
  const ok = await confirmDialog('Delete XMPP federated partner',
    `Delete ${p.domain}? Its users will no longer be able to communicate with yours, and open streams to it are closed.`, 'Delete');
  if (!ok) return;
  const res = await api('DELETE', '/api/partners/' + encodeURIComponent(p.domain) + '?revision=' + p.revision);
  if (res.status === 200) {
    state.notice = { kind: 'success', title: `Deleted ${p.domain}.` };
    state.selected = null;
  } else {
    const f = describeFailure(res, p.domain);
    state.notice = { kind: 'error', title: f.title, lines: f.lines };
  }
  render();
}

// ---- XMPP Federated Partners: form ----

const NEG_OPTIONS = [['Required', 'Required'], ['Optional', 'Optional'], ['NotSupported', 'Not supported']];
const BOOL_OPTIONS = [['true', 'True'], ['false', 'False']];

function select(id, options, value) {
  return h('select', { id, name: id }, options.map(([v, t]) => h('option', { value: v, selected: String(value) === v }, t)));
}

// One labelled row of a form: label, control, help text tied with aria-describedby.
function fieldRow(id, label, control, help, required) {
  const helpId = id + '-help';
  control.setAttribute('aria-describedby', helpId + ' ' + id + '-error');
  if (required) control.setAttribute('aria-required', 'true');
  return h('div', { class: 'field', 'data-field': id },
    h('label', { for: id }, label, required ? h('span', { class: 'req', 'aria-hidden': 'true', text: ' *' }) : null),
    h('div', { class: 'control' }, control,
      h('p', { class: 'field-error', id: id + '-error', hidden: true }),
      h('p', { class: 'help', id: helpId, text: help })));
}

function domainListEditor(initial, readOnly) {
  const list = h('ul', { id: 'additional-list', class: 'chips', 'aria-label': 'Additional domain list' });
  const input = h('input', { id: 'f-additional', placeholder: 'e.g. research.fabrikam.com', autocapitalize: 'none', spellcheck: 'false', disabled: readOnly });
  function addEntry(d) {
    d = d.trim();
    if (!d) return;
    for (const li of list.children) if (li.dataset.domain === d) return;
    list.append(h('li', { 'data-domain': d }, h('span', { text: d }),
      h('button', { type: 'button', class: 'chip-remove', 'aria-label': 'Remove ' + d, disabled: readOnly,
        onclick: (e) => { e.currentTarget.parentElement.remove(); input.focus(); } }, '×')));
  }
  (initial || []).forEach(addEntry);
  const add = h('button', { type: 'button', id: 'btn-add-domain', disabled: readOnly,
    onclick: () => { input.value.split(/[\s,]+/).forEach(addEntry); input.value = ''; input.focus(); } }, 'Add');
  input.addEventListener('keydown', (e) => { if (e.key === 'Enter') { e.preventDefault(); add.click(); } });
  const wrap = h('div', { class: 'list-editor' }, h('div', { class: 'inline' }, input, add), list);
  wrap.values = () => [...list.children].map((li) => li.dataset.domain);
  wrap.input = input;
  return wrap;
}

const HELP = {
  domain: 'The partner\'s main XMPP domain, for example fabrikam.com. It names the partner and cannot be changed later.',
  description: 'Notes for administrators, such as the partner\'s contact.',
  additional: 'Other XMPP domains the partner uses. Subdomains are not implied: list every domain, including subdomains of the primary domain.',
  type: 'Federated: trusted (same organisation or a business partner); its users can see presence and send messages without authorization. Public verified: a public provider trusted to verify its users. Public unverified (recommended for public providers): its users can only communicate once your user has added them.',
  tls: 'STARTTLS on the server-to-server stream. Required: the stream must be encrypted. Optional: used if the partner offers it. Not supported: never used.',
  sasl: 'SASL EXTERNAL authentication with certificates. It needs TLS: with TLS Not supported, SASL must be Not supported too.',
  dialback: 'Server Dialback (XEP-0220) verifies the partner through DNS when certificates cannot be used. False: dialback requests are refused. Either SASL or dialback must be enabled.',
  keepalive: 'Send and expect keepalives on the partner\'s streams; a stream silent for longer than the gateway\'s keepalive interval is closed.',
  limit: 'Most simultaneous connections to this partner. Leave empty to use the gateway\'s partner connection limit.',
  proxy: 'Connect to this host (and optional :port) instead of looking up the partner\'s servers in DNS SRV records. Leave empty for DNS.',
};

async function viewPartnerForm(domain) {
  let p = { domain: '', description: '', additional_domains: [], type: 'PublicUnverified', tls: 'Required', sasl: 'Required',
    dialback: true, keepalive: true, connection_limit: null, proxy_fqdn: '', revision: 0 };
  if (domain) {
    const res = await api('GET', '/api/partners/' + encodeURIComponent(domain));
    if (res.status !== 200) {
      show(federationTabs('/partners'), ...pageHead('XMPP Federated Partner'),
        noticeBox('error', `${domain} could not be opened: ${res.data.reason || res.status}.`), linkTo('/partners', 'Back to the list'));
      return;
    }
    p = res.data.partner;
  }
  const readOnly = !isAdmin();
  const ed = domainListEditor(p.additional_domains, readOnly);
  const f = {
    domain: h('input', { id: 'f-domain', value: p.domain, readonly: !!domain, autocapitalize: 'none', spellcheck: 'false', placeholder: 'e.g. fabrikam.com' }),
    description: h('textarea', { id: 'f-description', rows: 2 }),
    type: select('f-type', [['Federated', 'Federated'], ['PublicVerified', 'Public verified'], ['PublicUnverified', 'Public unverified']], p.type),
    tls: select('f-tls', NEG_OPTIONS, p.tls),
    sasl: select('f-sasl', NEG_OPTIONS, p.sasl),
    dialback: select('f-dialback', BOOL_OPTIONS, p.dialback),
    keepalive: select('f-keepalive', BOOL_OPTIONS, p.keepalive),
    limit: h('input', { id: 'f-limit', inputmode: 'numeric', value: p.connection_limit ?? '', placeholder: 'gateway default' }),
    proxy: h('input', { id: 'f-proxy', value: p.proxy_fqdn || '', autocapitalize: 'none', spellcheck: 'false', placeholder: 'DNS SRV lookup' }),
  };
  f.description.value = p.description || '';
  if (readOnly) for (const c of Object.values(f)) c.disabled = true;
  const msg = h('div', { id: 'form-messages' });
  const commit = h('button', { type: 'submit', class: 'primary', disabled: readOnly }, 'Commit');
  const form = h('form', { id: 'partner-form', class: 'form', novalidate: true, 'aria-label': domain ? 'Edit XMPP federated partner' : 'New XMPP federated partner' },
    h('div', { class: 'toolbar' }, commit,
      h('button', { type: 'button', onclick: () => go('/partners') }, 'Cancel')),
    msg,
    h('fieldset', null, h('legend', { text: 'Partner' }),
      fieldRow('f-domain', 'Primary domain', f.domain, HELP.domain, true),
      fieldRow('f-description', 'Description', f.description, HELP.description),
      fieldRow('f-additional', 'Additional domains', ed, HELP.additional),
      fieldRow('f-type', 'Partner type', f.type, HELP.type)),
    h('fieldset', null, h('legend', { text: 'Negotiation' }),
      fieldRow('f-tls', 'TLS negotiation', f.tls, HELP.tls),
      fieldRow('f-sasl', 'SASL negotiation', f.sasl, HELP.sasl),
      fieldRow('f-dialback', 'Dialback negotiation', f.dialback, HELP.dialback)),
    h('fieldset', null, h('legend', { text: 'Connection' }),
      fieldRow('f-keepalive', 'Keepalive', f.keepalive, HELP.keepalive),
      fieldRow('f-limit', 'Connection limit', f.limit, HELP.limit),
      fieldRow('f-proxy', 'Proxy FQDN', f.proxy, HELP.proxy)));
  // fieldRow wired aria-describedby on the editor wrapper; the input is what the label names.
  ed.input.setAttribute('aria-describedby', 'f-additional-help f-additional-error');
  const fieldIds = { domain: 'f-domain', description: 'f-description', additional_domains: 'f-additional', type: 'f-type',
    tls: 'f-tls', sasl: 'f-sasl', dialback: 'f-dialback', keepalive: 'f-keepalive', connection_limit: 'f-limit', proxy_fqdn: 'f-proxy' };

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearFieldErrors(form);
    msg.replaceChildren();
    if (ed.input.value.trim()) document.getElementById('btn-add-domain').click();
    const limitText = f.limit.value.trim();
    const body = {
      domain: f.domain.value.trim(),
      description: f.description.value,
      additional_domains: ed.values(),
      type: f.type.value, tls: f.tls.value, sasl: f.sasl.value,
      dialback: f.dialback.value === 'true', keepalive: f.keepalive.value === 'true',
      // The server decides what a valid limit is; the text goes as typed when not a plain number.
      connection_limit: limitText === '' ? null : (/^\d+$/.test(limitText) ? Number(limitText) : limitText),
      proxy_fqdn: f.proxy.value.trim(),
    };
    if (domain) body.revision = p.revision;
    commit.disabled = true;
    const res = domain
      ? await api('PUT', '/api/partners/' + encodeURIComponent(domain), body)
      : await api('POST', '/api/partners', body);
    commit.disabled = readOnly;
    if (res.status === 200 || res.status === 201) {
      const saved = res.data.partner;
      const warnings = messagesOf(res.data, 'warning').map((m) => m.text);
      const infos = messagesOf(res.data, 'info').map((m) => m.text);
      state.selected = saved.domain;
      state.notice = warnings.length
        ? { kind: 'warning', title: `Saved ${saved.domain} with a warning:`, lines: warnings }
        : { kind: 'success', title: `Saved ${saved.domain}.`, lines: infos };
      go('/partners');
      return;
    }
    const fail = describeFailure(res, domain || body.domain || 'The partner');
    msg.replaceChildren(noticeBox('error', fail.title, fail.lines));
    for (const m of messagesOf(res.data, 'error')) showFieldError(fieldIds[m.field], m.text);
    if (!res.data.messages && res.data.field) showFieldError(fieldIds[res.data.field], res.data.reason);
    msg.scrollIntoView({ block: 'nearest' });
  });

  show(federationTabs('/partners'),
    ...pageHead(domain ? (readOnly ? 'View' : 'Edit') + ' XMPP Federated Partner – ' + domain : 'New XMPP Federated Partner',
      readOnly ? null : 'Fill in the settings and click Commit. Fields marked * are required.'),
    readOnlyBanner(), form);
  (domain ? f.description : f.domain).focus();
}

function clearFieldErrors(form) {
  for (const e of form.querySelectorAll('.field-error')) { e.hidden = true; e.textContent = ''; }
  for (const e of form.querySelectorAll('[aria-invalid]')) e.removeAttribute('aria-invalid');
  for (const e of form.querySelectorAll('.field.invalid')) e.classList.remove('invalid');
}

function showFieldError(id, text) {
  if (!id) return;
  const ctl = document.getElementById(id);
  const err = document.getElementById(id + '-error');
  if (!ctl || !err) return;
  ctl.setAttribute('aria-invalid', 'true');
  ctl.closest('.field').classList.add('invalid');
  err.textContent = err.textContent ? err.textContent + ' ' + text : text;
  err.hidden = false;
}

// ---- generic settings form (gateway) ----

const GATEWAY_FIELDS = [
  ['connection_limit', 'Connection limit', 'number', 'Simultaneous connections for all XMPP partners together (Lync ConnectionLimit, default 1000).'],
  ['partner_connection_limit', 'Partner connection limit', 'number', 'Simultaneous connections per partner unless the partner sets its own (default 20).'],
  ['keepalive_interval', 'Keepalive interval', 'number', 'Seconds a keepalive partner may stay silent before its stream is closed (default 300).'],
  ['stream_establishment_timeout', 'Stream establishment timeout', 'number', 'Seconds a partner has to finish negotiating a stream (default 60).'],
  ['stream_inactivity_timeout', 'Stream inactivity timeout', 'number', 'Seconds without a stanza before a stream is closed (default 600).'],
  ['subscription_refresh_interval', 'Subscription refresh interval', 'number', 'Seconds an unanswered invitation from one of your users authorises the reverse subscription (default 28800).'],
  ['log_message_bodies', 'Log all message bodies', 'bool', 'True logs the text of every message. False (default) logs only who talked to whom.'],
  ['unknown_domains', 'Unknown domains', 'enum:deny=Deny,allow=Allow with the default profile', 'What happens to a domain no partner lists. Deny is Lync\'s allow-list behaviour.'],
  ['max_stanza_size', 'Maximum stanza size', 'number', 'Largest stanza accepted after authentication, in bytes (at least 10000).'],
  ['listen_s2s', 'Server-to-server listener', 'text', 'ADDR:PORT for partner connections with STARTTLS; empty turns it off.'],
  ['listen_s2s_tls', 'Direct TLS listener', 'text', 'ADDR:PORT for direct-TLS partner connections (XEP-0368); empty turns it off.'],
  ['listen_component', 'Component listener', 'text', 'ADDR:PORT for XEP-0114 components; empty turns it off.'],
  ['listen_component_tls', 'Component TLS listener', 'text', 'ADDR:PORT for XEP-0114 components that connect with TLS from the first byte (components on other hosts); empty turns it off (default).'],
  ['listen_metrics', 'Metrics listener', 'text', 'ADDR:PORT of the /metrics endpoint; empty turns it off.'],
  ['resolver', 'DNS resolver', 'text', 'ADDR:PORT of the DNS server to ask; empty uses the system resolver.'],
  ['trust_anchors', 'Trust anchors file', 'text', 'PEM file of the certificate authorities partner certificates must chain to.'],
];

function controlFor(id, kind, value) {
  if (kind === 'bool') return select(id, BOOL_OPTIONS, value);
  if (kind.startsWith('enum:')) {
    const opts = kind.slice(5).split(',').map((s) => s.split('='));
    return select(id, opts, value);
  }
  return h('input', { id, value: value ?? '', inputmode: kind === 'number' ? 'numeric' : null, autocapitalize: 'none', spellcheck: 'false' });
}

function valueOf(kind, el) {
  if (kind === 'bool') return el.value === 'true';
  const t = el.value.trim();
  if (kind === 'number') return /^\d+$/.test(t) ? Number(t) : t;
  return kind.startsWith('enum:') ? el.value : t;
}

async function viewGateway() {
  const res = await api('GET', '/api/gateway');
  const g = res.data.gateway || {};
  const notice = takeNotice();
  const readOnly = !isAdmin();
  const msg = h('div', { id: 'form-messages' });
  const controls = {};
  const rows = GATEWAY_FIELDS.map(([name, label, kind, help]) => {
    const c = controlFor('g-' + name, kind, g[name]);
    c.disabled = readOnly;
    controls[name] = [kind, c];
    return fieldRow('g-' + name, label, c, help);
  });
  const pass = h('input', { id: 'g-dialback_passphrase', type: 'password', autocomplete: 'new-password', placeholder: 'unchanged', disabled: readOnly });
  const form = h('form', { class: 'form', novalidate: true, 'aria-label': 'XMPP gateway settings' },
    h('div', { class: 'toolbar' }, h('button', { type: 'submit', class: 'primary', disabled: readOnly }, 'Commit'),
      h('button', { type: 'button', onclick: () => render() }, 'Cancel')),
    msg,
    h('fieldset', null, h('legend', { text: 'Limits and timers' }), rows.slice(0, 9)),
    h('fieldset', null, h('legend', { text: 'Dialback' }),
      fieldRow('g-dialback_passphrase', 'New dialback passphrase', pass, 'The secret all gateway nodes share to compute dialback keys (XEP-0185). One was generated when the store was created; leave empty to keep it.')),
    h('fieldset', null, h('legend', { text: 'Listeners and trust' }), rows.slice(9)));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearFieldErrors(form);
    msg.replaceChildren();
    const body = { revision: g.revision };
    for (const [name, [kind, c]] of Object.entries(controls)) body[name] = valueOf(kind, c);
    if (pass.value) body.dialback_passphrase = pass.value;
    const r = await api('PUT', '/api/gateway', body);
    if (r.status === 200) {
      const w = messagesOf(r.data, 'warning').map((m) => m.text);
      state.notice = w.length ? { kind: 'warning', title: 'Saved the gateway settings with a warning:', lines: w }
        : { kind: 'success', title: 'Saved the gateway settings.' };
      render();
      return;
    }
    const fail = describeFailure(r, 'The gateway settings');
    msg.replaceChildren(noticeBox('error', fail.title, fail.lines));
    for (const m of messagesOf(r.data, 'error')) showFieldError('g-' + m.field, m.text);
  });
  show(federationTabs('/gateway'),
    ...pageHead('XMPP Gateway Settings', 'Settings of the gateway itself, as Set-CsXmppGatewayConfiguration. Changes apply to running gateways within moments.'),
    readOnlyBanner(), notice ? noticeBox(notice.kind, notice.title, notice.lines) : null, form);
}

// ---- Hosted domains ----

async function viewHosted() {
  const res = await api('GET', '/api/hosted');
  const list = res.data.hosted || [];
  const notice = takeNotice();
  const readOnly = !isAdmin();
  const editing = new URLSearchParams(location.search).get('domain');
  const cur = list.find((x) => x.domain === editing) || { domain: '', cert_path: '', key_path: '', route: 'component', target: '', enabled: true, revision: 0 };
  const rows = list.map((d) => h('tr', null,
    h('td', { class: 'domain' }, d.domain), h('td', null, d.route === 's2s' ? 'Internal server (s2s)' : 'Component (XEP-0114)'),
    h('td', null, d.route === 's2s' ? d.target : ''), h('td', null, d.enabled ? 'True' : 'False'),
    h('td', { class: 'wrap' }, d.cert_path || ''),
    h('td', { class: 'actions' },
      linkTo('/hosted?domain=' + encodeURIComponent(d.domain), readOnly ? 'View' : 'Edit', { 'aria-label': (readOnly ? 'View ' : 'Edit ') + d.domain }),
      h('button', { type: 'button', class: 'link-button danger-text', disabled: readOnly, 'aria-label': 'Delete ' + d.domain,
        onclick: async () => {
          if (!await confirmDialog('Delete hosted domain', `Delete ${d.domain}? The gateway stops serving it.`, 'Delete')) return;
          const r = await api('DELETE', '/api/hosted/' + encodeURIComponent(d.domain));
          state.notice = r.status === 200 ? { kind: 'success', title: `Deleted ${d.domain}.` } : { kind: 'error', ...describeFailure(r, d.domain) };
          go('/hosted');
        } }, 'Delete'))));
  const c = {
    domain: h('input', { id: 'h-domain', value: cur.domain, readonly: !!editing, autocapitalize: 'none', spellcheck: 'false' }),
    cert_path: h('input', { id: 'h-cert_path', value: cur.cert_path || '', spellcheck: 'false' }),
    key_path: h('input', { id: 'h-key_path', value: cur.key_path || '', spellcheck: 'false' }),
    route: select('h-route', [['component', 'Component (XEP-0114)'], ['s2s', 'Internal server (s2s)']], cur.route),
    secret: h('input', { id: 'h-secret', type: 'password', autocomplete: 'new-password', placeholder: editing ? 'unchanged' : '' }),
    target: h('input', { id: 'h-target', value: cur.target || '', spellcheck: 'false', placeholder: 'host[:port]' }),
    enabled: select('h-enabled', BOOL_OPTIONS, cur.enabled),
  };
  if (readOnly) for (const x of Object.values(c)) x.disabled = true;
  const msg = h('div', { id: 'form-messages' });
  const form = h('form', { class: 'form', novalidate: true, 'aria-label': editing ? 'Edit hosted domain' : 'New hosted domain' },
    h('h2', { text: editing ? (readOnly ? 'Hosted domain – ' : 'Edit hosted domain – ') + editing : 'New hosted domain' }),
    h('div', { class: 'toolbar' }, h('button', { type: 'submit', class: 'primary', disabled: readOnly }, 'Commit'),
      h('button', { type: 'button', onclick: () => go('/hosted') }, 'Cancel')),
    msg,
    h('fieldset', null, h('legend', { text: 'Hosted domain' }),
    fieldRow('h-domain', 'Domain', c.domain, 'A domain of yours that this gateway serves to partners.', true),
    fieldRow('h-cert_path', 'Certificate file', c.cert_path, 'Absolute path of the PEM certificate chain presented for this domain.'),
    fieldRow('h-key_path', 'Private key file', c.key_path, 'Absolute path of the PEM private key of that certificate.'),
    fieldRow('h-route', 'Route', c.route, 'Where stanzas for this domain go: a component that connects with a secret, or an internal XMPP server over s2s.'),
    fieldRow('h-secret', 'Component secret', c.secret, 'The XEP-0114 handshake secret (component route).' + (editing ? ' Leave empty to keep it.' : '')),
    fieldRow('h-target', 'Internal server', c.target, 'host[:port] of the internal XMPP server (s2s route).'),
    fieldRow('h-enabled', 'Enabled', c.enabled, 'False keeps the record but refuses the domain\'s traffic.')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearFieldErrors(form);
    const body = { domain: c.domain.value.trim(), cert_path: c.cert_path.value.trim(), key_path: c.key_path.value.trim(),
      route: c.route.value, target: c.target.value.trim(), enabled: c.enabled.value === 'true' };
    if (c.secret.value) body.secret = c.secret.value;
    if (editing) body.revision = cur.revision;
    const r = editing ? await api('PUT', '/api/hosted/' + encodeURIComponent(editing), body) : await api('POST', '/api/hosted', body);
    if (r.status === 200 || r.status === 201) {
      const w = messagesOf(r.data, 'warning').map((m) => m.text);
      state.notice = w.length ? { kind: 'warning', title: `Saved ${r.data.hosted.domain} with a warning:`, lines: w } : { kind: 'success', title: `Saved ${r.data.hosted.domain}.` };
      go('/hosted');
      return;
    }
    const fail = describeFailure(r, editing || body.domain || 'The domain');
    msg.replaceChildren(noticeBox('error', fail.title, fail.lines));
    for (const m of messagesOf(r.data, 'error')) showFieldError('h-' + m.field, m.text);
  });
  show(federationTabs('/hosted'),
    ...pageHead('Hosted Domains', 'Your own XMPP domains: the gateway presents their certificates to partners and routes their traffic inside.'),
    readOnlyBanner(), notice ? noticeBox(notice.kind, notice.title, notice.lines) : null,
    h('div', { class: 'table-wrap' }, h('table', { class: 'grid', 'aria-label': 'Hosted domains' },
      h('thead', null, h('tr', null, ['Domain', 'Route', 'Internal server', 'Enabled', 'Certificate file', 'Actions'].map((t) => h('th', { scope: 'col', text: t })))),
      h('tbody', null, rows.length ? rows : h('tr', null, h('td', { colspan: 6, class: 'empty', text: 'No hosted domains yet.' }))))),
    form);
}

// ---- External access policy ----

function describeKey(k) {
  if (k === 'global') return 'Global (everyone)';
  if (k.startsWith('domain:')) return 'Hosted domain ' + k.slice(7);
  if (k.startsWith('user:')) return 'User ' + k.slice(5);
  return k;
}

async function viewAccess() {
  const res = await api('GET', '/api/access');
  const list = res.data.access || [];
  const notice = takeNotice();
  const readOnly = !isAdmin();
  const rows = list.map((e) => h('tr', null, h('td', null, describeKey(e.key)), h('td', null, e.value ? 'True' : 'False'),
    h('td', { class: 'actions' }, h('button', { type: 'button', class: 'link-button danger-text', disabled: readOnly, 'aria-label': 'Remove ' + e.key,
      onclick: async () => {
        if (!await confirmDialog('Remove access setting', `Remove the setting for ${describeKey(e.key)}? The next wider scope applies then.`, 'Remove')) return;
        const r = await api('DELETE', '/api/access/' + encodeURIComponent(e.key));
        state.notice = r.status === 200 ? { kind: 'success', title: 'Removed the setting.' } : { kind: 'error', ...describeFailure(r, e.key) };
        render();
      } }, 'Remove'))));
  const scope = select('a-scope', [['global', 'Global'], ['domain', 'Hosted domain'], ['user', 'User']], 'global');
  const subject = h('input', { id: 'a-subject', placeholder: 'example.com or alice@example.com', autocapitalize: 'none', spellcheck: 'false' });
  const value = select('a-value', BOOL_OPTIONS, 'true');
  if (readOnly) { scope.disabled = subject.disabled = value.disabled = true; }
  const msg = h('div', { id: 'form-messages' });
  const form = h('form', { class: 'form', novalidate: true, 'aria-label': 'Set external access' },
    h('h2', { text: 'Set external access' }),
    h('div', { class: 'toolbar' }, h('button', { type: 'submit', class: 'primary', disabled: readOnly }, 'Commit')),
    msg,
    h('fieldset', null, h('legend', { text: 'Access setting' }),
      fieldRow('a-scope', 'Scope', scope, 'The most specific setting wins: a user\'s own, then their domain\'s, then the global one.'),
      fieldRow('a-subject', 'Domain or user', subject, 'The hosted domain or the user (bare JID) the setting is for; empty for Global.'),
      fieldRow('a-value', 'Enable communications with XMPP federated users', value, 'Lync\'s EnableXmppAccess. False by default.')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearFieldErrors(form);
    const key = scope.value === 'global' ? 'global' : scope.value + ':' + subject.value.trim();
    const r = await api('PUT', '/api/access', { key, value: value.value === 'true' });
    if (r.status === 200) {
      state.notice = { kind: 'success', title: `Saved the setting for ${describeKey(key)}.` };
      render();
      return;
    }
    const fail = describeFailure(r, key);
    msg.replaceChildren(noticeBox('error', fail.title, fail.lines));
  });
  show(federationTabs('/access'),
    ...pageHead('External Access Policy', 'Which of your users may communicate with users of XMPP federated partners.'),
    readOnlyBanner(), notice ? noticeBox(notice.kind, notice.title, notice.lines) : null,
    h('div', { class: 'table-wrap' }, h('table', { class: 'grid', 'aria-label': 'External access settings' },
      h('thead', null, h('tr', null, ['Scope', 'Enable communications with XMPP federated users', 'Actions'].map((t) => h('th', { scope: 'col', text: t })))),
      h('tbody', null, rows.length ? rows : h('tr', null, h('td', { colspan: 3, class: 'empty', text: 'Nothing set: XMPP access is off for everyone.' }))))),
    form);
}

// ---- Audit log ----

function changeSummary(e) {
  if ((e.before !== null && typeof e.before !== 'object') || (e.after !== null && typeof e.after !== 'object'))
    return `${JSON.stringify(e.before)} → ${JSON.stringify(e.after)}`;
  const b = e.before && typeof e.before === 'object' ? e.before : null;
  const a = e.after && typeof e.after === 'object' ? e.after : null;
  if (!b && a) return 'created';
  if (b && !a) return 'removed';
  if (!a || !b) return '';
  const parts = [];
  for (const k of Object.keys(a)) {
    if (k === 'revision') continue;
    const x = JSON.stringify(b[k]), y = JSON.stringify(a[k]);
    if (x !== y) parts.push(`${k}: ${x ?? '–'} → ${y}`);
  }
  return parts.join('; ');
}

function when(ms) {
  const d = new Date(ms);
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

function auditTable(entries) {
  return h('div', { class: 'table-wrap' }, h('table', { class: 'grid', id: 'audit-table', 'aria-label': 'Audit log' },
    h('thead', null, h('tr', null, ['When', 'Who', 'What', 'Subject', 'Change'].map((t) => h('th', { scope: 'col', text: t })))),
    h('tbody', null, entries.map((e) => h('tr', null,
      h('td', { class: 'nowrap' }, when(e.time_ms)), h('td', null, e.actor), h('td', null, e.verb),
      h('td', { class: 'domain' }, e.subject), h('td', { class: 'wrap small' }, changeSummary(e)))))));
}

async function viewAudit() {
  const res = await api('GET', '/api/audit?limit=500');
  const entries = (res.data.audit || []).slice().reverse();
  const filter = h('input', { id: 'audit-filter', type: 'search', placeholder: 'Who, what or subject' });
  const table = auditTable(entries);
  filter.addEventListener('input', () => {
    const q = filter.value.trim().toLowerCase();
    for (const tr of table.querySelectorAll('tbody tr')) tr.hidden = q && !tr.textContent.toLowerCase().includes(q);
  });
  show(...pageHead('Audit Log', 'Every change to the policy store, newest first: who made it, when, and what changed.'),
    h('div', { class: 'toolbar' }, h('button', { type: 'button', onclick: () => render() }, 'Refresh'), h('span', { class: 'spacer' }),
      h('label', { for: 'audit-filter', class: 'inline-label' }, 'Filter'), filter),
    entries.length ? table : h('p', { class: 'muted', text: 'No changes yet.' }));
}

// ---- start ----

async function start() {
  const res = await api('GET', '/api/session');
  if (res.status !== 200) return;
  Object.assign(state, res.data);
  document.getElementById('who-name').textContent = state.user;
  document.getElementById('who-role').textContent = state.role === 'admin' ? 'Administrator' : 'Viewer (read-only)';
  document.getElementById('sign-out').addEventListener('click', async () => {
    await api('POST', '/api/logout');
    location.assign('/login');
  });
  for (const a of document.querySelectorAll('.sidenav a')) {
    a.addEventListener('click', (e) => { e.preventDefault(); go(a.getAttribute('href')); });
  }
  window.addEventListener('popstate', render);
  render();
}

start();

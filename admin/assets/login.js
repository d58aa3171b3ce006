'use strict';
// Sign-in page: posts the account name and password as JSON; the server answers with an
// HttpOnly session cookie and the page moves on to the panel.
(function () {
  const form = document.getElementById('login-form');
  const err = document.getElementById('login-error');
  function show(text) {
    err.textContent = text;
    err.hidden = false;
  }
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    err.hidden = true;
    const name = document.getElementById('login-name').value.trim();
    const password = document.getElementById('login-password').value;
    if (!name || !password) {
      show('Enter the account name and the password.');
      return;
    }
    let res;
    try {
      res = await fetch('/api/login', {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ name, password }),
      });
    } catch (e) {
      show('The control panel cannot be reached.');
      return;
    }
    if (res.ok) {
      const next = new URLSearchParams(location.search).get('next');
      location.assign(next && next.startsWith('/') && !next.startsWith('//') ? next : '/partners');
      return;
    }
    let body = {};
    try { body = await res.json(); } catch (e) { /* not JSON */ }
    if (res.status === 429) {
      const wait = res.headers.get('Retry-After');
      show('Too many failed sign-ins. Try again in ' + (wait || 'a few') + ' seconds.');
    } else if (res.status === 401) {
      show('Wrong account name or password.');
    } else {
      show(body.reason || ('Sign-in failed (HTTP ' + res.status + ').'));
    }
  });
})();

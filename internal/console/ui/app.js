// The ASE console: a page application over the management API, with the
// operator's session (the session_id cookie, HttpOnly: this script never
// sees it). Everything shown is built with DOM nodes and text, never
// parsed HTML, so nothing a client or an operator wrote can run here.
'use strict';
(() => {
  const main = document.getElementById('main');
  const nav = document.getElementById('nav');
  const who = document.getElementById('who');
  const state = { user: sessionStorage.getItem('ase.user') || '', role: sessionStorage.getItem('ase.role') || '' };
  let stopPage = () => {};

  // ---- DOM helpers ----
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else if (k === 'class') e.className = v;
      else e.setAttribute(k, v === true ? '' : v);
    }
    for (const k of kids.flat()) {
      if (k !== null && k !== undefined && k !== false) e.append(k instanceof Node ? k : String(k));
    }
    return e;
  }
  const SVG = 'http://www.w3.org/2000/svg';
  function sv(tag, attrs, ...kids) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    for (const k of kids) e.append(k);
    return e;
  }
  function toast(msg) {
    const t = el('div', {}, msg);
    document.getElementById('toast').append(t);
    setTimeout(() => t.remove(), 6000);
  }
  const fmt = (n) => n >= 100 ? Math.round(n).toLocaleString('en') : (Math.round(n * 10) / 10).toLocaleString('en');
  const canWrite = () => state.role !== 'read';
  function writeButton(label, attrs, onclick) {
    const b = el('button', Object.assign({ type: 'button', onclick }, attrs || {}), label);
    if (!canWrite()) {
      b.disabled = true;
      b.title = 'Your role (read) sees everything and changes nothing';
    }
    return b;
  }

  // ---- the management API ----
  class APIError extends Error {
    constructor(status, message, data) { super(message); this.status = status; this.data = data; }
  }
  // inFlight counts the API calls not answered yet (busy(): the tests and
  // the page-speed benchmark wait for a page to be usable with it).
  let inFlight = 0;
  const busy = () => inFlight;
  async function call(method, path, body) {
    inFlight++;
    try {
      return await callNow(method, path, body);
    } finally {
      inFlight--;
    }
  }
  async function callNow(method, path, body) {
    const opt = { method, credentials: 'same-origin', headers: {} };
    if (body !== undefined) {
      opt.headers['Content-Type'] = 'application/json';
      opt.body = typeof body === 'string' ? body : JSON.stringify(body);
    }
    const r = await fetch(path, opt);
    const text = await r.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
    if (!r.ok) {
      let msg = (data && (data.status_message || (data.error && data.error.message))) || text || r.statusText;
      if (data && data.detail) msg += ': ' + data.detail;
      const denied = data && (data.status === 'permission_denied' || (data.error && data.error.type === 'PermissionDenied'));
      if ((r.status === 403 || r.status === 401) && !denied && path !== '/v5/ase/status') {
        // The vendor's API answers 403 to bad input too: only a session
        // that the status read refuses as well has ended.
        const s = await fetch('/v5/ase/status', { credentials: 'same-origin' }).catch(() => null);
        if (s && (s.status === 401 || s.status === 403)) signedOut('Your session has ended: sign in again.');
      }
      throw new APIError(r.status, msg, data);
    }
    return data;
  }

  // ---- signing in ----
  function b64(s) {
    const bytes = new TextEncoder().encode(s);
    let bin = '';
    for (const b of bytes) bin += String.fromCharCode(b);
    return btoa(bin);
  }
  function signInPage(message) {
    nav.hidden = true;
    who.hidden = true;
    const err = el('p', { class: 'error', id: 'signin-error', role: 'alert' }, message || '');
    const user = el('input', { id: 'user', name: 'user', autocomplete: 'username', required: true, autofocus: true });
    const pass = el('input', { id: 'password', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
    const form = el('form', { class: 'card signin', onsubmit: async (ev) => {
      ev.preventDefault();
      err.textContent = '';
      try {
        const r = await fetch('/api/authentication?login_method=local&type=password', {
          credentials: 'same-origin', headers: { Authorization: 'Basic ' + b64(user.value + ':' + pass.value) },
        });
        const data = await r.json().catch(() => null);
        if (!r.ok) {
          err.textContent = (data && data.error && data.error.message) || ('Sign-in failed (' + r.status + ')');
          pass.value = '';
          pass.focus();
          return;
        }
        pass.value = '';
        signedIn(data, user.value);
      } catch (e) {
        err.textContent = 'Sign-in failed: ' + e.message;
      }
    } },
    el('h1', {}, 'Sign in to ASE'),
    el('label', { for: 'user' }, 'User'), user,
    el('label', { for: 'password' }, 'Password'), pass,
    el('button', { type: 'submit', class: 'primary', id: 'signin' }, 'Sign in'),
    err);
    main.replaceChildren(form);
    user.focus();
    // With client_ca_file (and the management port on TLS), a certificate
    // the browser holds signs in too: its Subject Common Name is the user.
    fetch('/api/authentication/login_methods', { credentials: 'same-origin' }).then((r) => r.json()).then((m) => {
      if (!(m.login_methods || []).some((x) => x.type === 'x509')) return;
      form.append(el('button', { type: 'button', id: 'signin-x509', onclick: async () => {
        err.textContent = '';
        const r = await fetch('/api/authentication?login_method=x509&type=x509', { credentials: 'same-origin' });
        const data = await r.json().catch(() => null);
        if (!r.ok) {
          err.textContent = (data && data.error && data.error.message) || ('Sign-in failed (' + r.status + ')');
          return;
        }
        signedIn(data, '');
      } }, 'Sign in with my certificate'));
    }).catch(() => {});
  }
  function signedIn(data, typed) {
    state.user = (data.meta && data.meta.user) || typed;
    state.role = (data.meta && data.meta.role) || '';
    sessionStorage.setItem('ase.user', state.user);
    sessionStorage.setItem('ase.role', state.role);
    if (!location.hash || location.hash === '#/signin') {
      location.hash = '#/overview'; // the hashchange routes, once
    } else {
      route();
    }
  }
  function signedOut(message) {
    stopPage();
    state.user = state.role = '';
    sessionStorage.removeItem('ase.user');
    sessionStorage.removeItem('ase.role');
    signInPage(message);
  }
  document.getElementById('signout').addEventListener('click', async () => {
    try { await call('DELETE', '/api/authentication'); } catch (e) { /* ended anyway */ }
    signedOut('Signed out.');
  });

  // onceBox (the sideband and users pages) shows a value that will not be shown again, with a way to copy
  // it and to hide it.
  function onceBox(box, title, value, note) {
    const code = el('code', { id: 'once-value', class: 'once-value' }, value);
    const copied = el('span', { class: 'ok', role: 'status' });
    box.replaceChildren(el('section', { class: 'card', id: 'once', 'aria-live': 'polite' },
      el('h2', {}, title),
      el('p', {}, code),
      el('p', { class: 'muted', id: 'once-note' }, note + ' It will not be shown again: copy it now.'),
      el('div', { class: 'actions' },
        el('button', { type: 'button', id: 'once-copy', onclick: async () => {
          try {
            await navigator.clipboard.writeText(value);
            copied.textContent = 'Copied.';
          } catch (e) {
            // No clipboard (a page not served over a secure context):
            // select it for the operator to copy.
            const r = document.createRange();
            r.selectNodeContents(code);
            const sel = getSelection();
            sel.removeAllRanges();
            sel.addRange(r);
            copied.textContent = 'Selected: copy it with Ctrl+C.';
          }
        } }, 'Copy'),
        el('button', { type: 'button', id: 'once-done', onclick: () => box.replaceChildren() }, 'Done, hide it'),
        copied)));
    box.querySelector('#once-copy').focus();
  }

  // when shows an RFC 3339 time as the API gives it, more readably.
  const when = (s) => (s || '').replace('T', ' ').replace(/Z$/, ' UTC');
  // relative: "in 3h 59m", "2d 4h ago": when a time is, from now.
  function relative(iso) {
    const ms = new Date(iso) - Date.now();
    if (!Number.isFinite(ms)) return '';
    let s = Math.round(Math.abs(ms) / 1000);
    const parts = [];
    for (const [unit, n] of [['d', 86400], ['h', 3600], ['m', 60], ['s', 1]]) {
      if (s >= n && parts.length < 2) {
        parts.push(Math.floor(s / n) + unit);
        s %= n;
      }
    }
    const d = parts.join(' ') || '0s';
    return ms >= 0 ? 'in ' + d : d + ' ago';
  }

  // ---- charts ----
  const colours = ['#2f7d4f', '#b3261e', '#1f5fbf', '#9a6700', '#6f42c1', '#0f7b8a', '#c2410c', '#4b5563', '#be185d', '#15803d'];
  // chart draws series ({name, colour, values}) of equal length, per step.
  function chart(title, series, stepSeconds, id) {
    const W = 720, H = 180, L = 44, B = 18, T = 8;
    const n = series.length ? series[0].values.length : 0;
    let max = 0;
    for (const s of series) for (const v of s.values) max = Math.max(max, v);
    const top = max > 0 ? max * 1.1 : 1;
    const x = (i) => L + (n <= 1 ? 0 : (i * (W - L)) / (n - 1));
    const y = (v) => T + (H - T - B) * (1 - v / top);
    const g = sv('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': title, preserveAspectRatio: 'none' });
    g.append(sv('line', { x1: L, y1: H - B, x2: W, y2: H - B, class: 'axis' }));
    g.append(sv('line', { x1: L, y1: T, x2: L, y2: H - B, class: 'axis' }));
    g.append(sv('text', { x: 2, y: T + 10 }, fmt(top) + '/s'));
    g.append(sv('text', { x: 2, y: H - B }, '0'));
    const minutes = Math.round((n * stepSeconds) / 60);
    g.append(sv('text', { x: L, y: H - 3 }, '−' + minutes + ' min'));
    g.append(sv('text', { x: W - 28, y: H - 3 }, 'now'));
    for (const s of series) {
      const pts = s.values.map((v, i) => x(i).toFixed(1) + ',' + y(v).toFixed(1)).join(' ');
      g.append(sv('polyline', { points: pts, fill: 'none', stroke: s.colour, 'stroke-width': 1.5, 'data-series': s.name }));
    }
    const legend = el('div', { class: 'legend' }, series.map((s) => {
      const sp = el('span', {}, s.name);
      sp.style.setProperty('--c', s.colour);
      return sp;
    }));
    return el('section', { class: 'card chart', id }, el('h2', {}, title), g, legend);
  }

  // ---- pages and routing ----
  // A page registers itself (pages/*.js, each loaded after this file): its
  // name is its address (#/name/arg), its label its link in the header.
  const pages = new Map();
  function register(name, label, order, render) {
    pages.set(name, { label, order, render });
  }
  async function route() {
    stopPage();
    stopPage = () => {};
    const parts = (location.hash || '#/overview').slice(2).split('/').map(decodeURIComponent);
    const page = pages.has(parts[0]) ? parts[0] : 'overview';
    if (!state.user) {
      // A session may still be open (a reload): the status read says.
      try {
        await call('GET', '/v5/ase/status');
        state.user = sessionStorage.getItem('ase.user') || '(signed in)';
      } catch (e) {
        signInPage('');
        return;
      }
    }
    nav.hidden = false;
    who.hidden = false;
    document.getElementById('who-name').textContent = state.user + (state.role ? ' (' + state.role + ')' : '');
    for (const a of nav.querySelectorAll('a')) {
      if (a.getAttribute('href') === '#/' + page) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
    }
    const stop = await pages.get(page).render(parts[1], parts.slice(2));
    if (typeof stop === 'function') stopPage = stop;
    main.focus();
  }
  window.ASE = { el, sv, toast, fmt, canWrite, writeButton, call, busy, APIError, chart, colours, register, route, main, state, onceBox, when, relative };
  document.addEventListener('DOMContentLoaded', () => {
    const entries = [...pages.entries()].sort((a, b) => a[1].order - b[1].order);
    nav.replaceChildren(...entries.map(([name, p]) => el('a', { href: '#/' + name }, p.label)));
    window.addEventListener('hashchange', route);
    route();
  });
})();

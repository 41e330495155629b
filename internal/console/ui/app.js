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
  async function call(method, path, body) {
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
      const msg = (data && (data.status_message || (data.error && data.error.message))) || text || r.statusText;
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
        state.user = (data.meta && data.meta.user) || user.value;
        state.role = (data.meta && data.meta.role) || '';
        sessionStorage.setItem('ase.user', state.user);
        sessionStorage.setItem('ase.role', state.role);
        pass.value = '';
        if (!location.hash || location.hash === '#/signin') location.hash = '#/overview';
        route();
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

  // ---- overview ----
  // The last hour, per step, by series (api, decision, reason), from
  // GET /v5/ase/activity; every 5 s only the steps that ended since.
  function overviewPage() {
    const view = { step: 5, to: null, series: new Map(), backends: [] };
    const body = el('div', {}, el('p', { class: 'muted' }, 'Loading the last hour…'));
    main.replaceChildren(el('h1', {}, 'Overview'), body);
    let timer = 0;
    let alive = true;
    async function load() {
      try {
        const q = view.to ? '?since=' + encodeURIComponent(view.to) : '';
        const rep = await call('GET', '/v5/ase/activity' + q);
        if (!alive) return;
        merge(view, rep);
        render();
      } catch (e) {
        if (alive && !(e instanceof APIError && e.status === 403)) body.replaceChildren(el('p', { class: 'error' }, 'Could not read the activity: ' + e.message));
      }
      if (alive) timer = setTimeout(load, 5000);
    }
    function render() {
      const n = 3600 / view.step;
      const sum = (pred) => {
        const out = new Array(n).fill(0);
        for (const s of view.series.values()) if (pred(s)) s.values.forEach((v, i) => { out[i] += v; });
        return out;
      };
      const perSec = (a) => a.map((v) => v / view.step);
      const allowed = sum((s) => s.decision === 'allow');
      const blocked = sum((s) => s.decision !== 'allow');
      const lastMin = (a) => a.slice(-60 / view.step).reduce((x, y) => x + y, 0) / 60;
      const total = (a) => a.reduce((x, y) => x + y, 0);
      const reasons = new Map();
      for (const s of view.series.values()) {
        if (s.decision === 'allow') continue;
        const k = s.reason === 'none' ? s.decision : s.reason;
        const a = reasons.get(k) || new Array(n).fill(0);
        s.values.forEach((v, i) => { a[i] += v; });
        reasons.set(k, a);
      }
      const perAPI = new Map();
      for (const s of view.series.values()) {
        const row = perAPI.get(s.api) || { allowed: 0, blocked: 0, reasons: new Map() };
        const t = total(s.values);
        if (s.decision === 'allow') row.allowed += t;
        else {
          row.blocked += t;
          const k = s.reason === 'none' ? s.decision : s.reason;
          row.reasons.set(k, (row.reasons.get(k) || 0) + t);
        }
        perAPI.set(s.api, row);
      }
      const figures = el('div', { class: 'card figures' },
        el('div', { class: 'figure allow', id: 'allowed-rate' }, el('b', {}, fmt(lastMin(allowed))), 'allowed per second (last minute)'),
        el('div', { class: 'figure block', id: 'blocked-rate' }, el('b', {}, fmt(lastMin(blocked))), 'blocked per second (last minute)'),
        el('div', { class: 'figure allow', id: 'allowed-total' }, el('b', {}, fmt(total(allowed))), 'allowed in the last hour'),
        el('div', { class: 'figure block', id: 'blocked-total' }, el('b', {}, fmt(total(blocked))), 'blocked in the last hour'),
        el('div', { class: 'figure muted' }, el('b', {}, view.to ? new Date(view.to).toLocaleTimeString() : '—'), 'up to'));
      const charts = el('div', { class: 'grid' },
        chart('Requests per second', [
          { name: 'allowed', colour: '#2f7d4f', values: perSec(allowed) },
          { name: 'blocked', colour: '#b3261e', values: perSec(blocked) },
        ], view.step, 'chart-requests'),
        chart('Blocked per second, by reason', [...reasons.entries()].sort().map(([k, a], i) => ({ name: k, colour: colours[(i + 1) % colours.length], values: perSec(a) })), view.step, 'chart-reasons'));
      const apis = el('section', { class: 'card' }, el('h2', {}, 'APIs, last hour'),
        perAPI.size === 0 ? el('p', { class: 'muted' }, 'No requests in the last hour.') :
          el('div', { class: 'table-wrap' }, el('table', { id: 'api-activity' },
            el('thead', {}, el('tr', {}, el('th', {}, 'API'), el('th', { class: 'num' }, 'allowed'), el('th', { class: 'num' }, 'blocked'), el('th', {}, 'why blocked'))),
            el('tbody', {}, [...perAPI.entries()].sort().map(([api, r]) => el('tr', { 'data-api': api },
              el('td', {}, api === '' ? '(no API)' : el('a', { href: '#/apis/' + encodeURIComponent(api) }, api)),
              el('td', { class: 'num' }, fmt(r.allowed)), el('td', { class: 'num' }, fmt(r.blocked)),
              el('td', {}, [...r.reasons.entries()].map(([k, v]) => k + ' ' + fmt(v)).join(', '))))))));
      const backends = el('section', { class: 'card' }, el('h2', {}, 'Backends'),
        view.backends.length === 0 ? el('p', { class: 'muted' }, 'No backend servers.') :
          el('div', { class: 'table-wrap' }, el('table', { id: 'backends' },
            el('thead', {}, el('tr', {}, el('th', {}, 'API'), el('th', {}, 'server'), el('th', {}, 'health'), el('th', { class: 'num' }, 'in flight'))),
            el('tbody', {}, view.backends.map((b) => el('tr', {},
              el('td', {}, b.api_id), el('td', {}, b.server),
              el('td', {}, el('span', { class: 'badge ' + b.health.toLowerCase() }, b.health)),
              el('td', { class: 'num' }, b.in_flight)))))));
      body.replaceChildren(figures, charts, apis, backends);
    }
    load();
    return () => { alive = false; clearTimeout(timer); };
  }
  function merge(view, rep) {
    view.step = rep.step_seconds;
    const n = 3600 / view.step;
    const shift = view.to ? Math.round((new Date(rep.to) - new Date(view.to)) / 1000 / view.step) : n;
    if (shift > 0) {
      for (const s of view.series.values()) {
        s.values = s.values.slice(Math.min(shift, n));
        while (s.values.length < n) s.values.push(0);
      }
    }
    for (const s of rep.series) {
      const key = s.api_id + '\u0000' + s.decision + '\u0000' + s.reason;
      let cur = view.series.get(key);
      if (!cur) {
        cur = { api: s.api_id, decision: s.decision, reason: s.reason, values: new Array(n).fill(0) };
        view.series.set(key, cur);
      }
      const off = n - s.requests.length;
      s.requests.forEach((v, i) => { if (off + i >= 0) cur.values[off + i] = v; });
    }
    view.to = rep.to;
    view.backends = rep.backends || [];
  }

  // ---- APIs ----
  async function apisPage(id) {
    if (id) return apiPage(id);
    const list = el('div', {}, el('p', { class: 'muted' }, 'Loading…'));
    main.replaceChildren(el('h1', {}, 'APIs'), list, createAPIForm());
    try {
      const data = await call('GET', '/v5/ase/api');
      const apis = (data.api || []).map((a) => a.api_id).sort();
      if (apis.length === 0) {
        list.replaceChildren(el('p', { class: 'muted' }, 'No APIs yet.'));
        return;
      }
      const rows = apis.map((a) => el('tr', { 'data-api': a },
        el('td', {}, el('a', { href: '#/apis/' + encodeURIComponent(a) }, a)),
        el('td', {}, writeButton('Delete', { class: 'danger', 'data-delete': a }, () => deleteAPI(a)))));
      const table = el('table', { id: 'api-list' },
        el('thead', {}, el('tr', {}, el('th', {}, 'API'), el('th', {}, ''))),
        el('tbody', {}, rows));
      list.replaceChildren(el('section', { class: 'card' }, el('div', { class: 'table-wrap' }, table), el('p', { class: 'muted' }, apis.length + ' APIs')));
    } catch (e) {
      list.replaceChildren(el('p', { class: 'error' }, e.message));
    }
  }
  function createAPIForm() {
    const id = el('input', { id: 'new-api-id', required: true });
    const doc = el('textarea', { id: 'new-api-json', spellcheck: 'false', placeholder: '{"api_metadata": {"url": "/shop", ...}}' });
    const file = el('input', { id: 'new-api-file', type: 'file', accept: '.json,application/json' });
    file.addEventListener('change', async () => {
      if (file.files.length) {
        doc.value = await file.files[0].text();
        if (!id.value) id.value = file.files[0].name.replace(/\.json$/i, '');
      }
    });
    const out = el('p', { id: 'new-api-result', role: 'alert' });
    const submit = el('button', { type: 'submit', class: 'primary', id: 'new-api-create' }, 'Create');
    if (!canWrite()) {
      submit.disabled = true;
      submit.title = 'Your role (read) sees everything and changes nothing';
    }
    return el('form', { class: 'card', onsubmit: async (ev) => {
      ev.preventDefault();
      out.className = '';
      out.textContent = '';
      try {
        JSON.parse(doc.value);
      } catch (e) {
        out.className = 'error';
        out.textContent = 'Not JSON: ' + e.message;
        return;
      }
      try {
        await call('POST', '/v5/ase/api?api_id=' + encodeURIComponent(id.value), doc.value);
        toast('API ' + id.value + ' created');
        location.hash = '#/apis/' + encodeURIComponent(id.value);
      } catch (e) {
        out.className = 'error';
        out.textContent = e.message;
      }
    } },
    el('h2', {}, 'Create an API'),
    el('p', { class: 'muted' }, 'Paste or upload a vendor API definition (JSON); errors are shown at their JSON path.'),
    el('label', { for: 'new-api-id' }, 'API id'), id,
    el('label', { for: 'new-api-json' }, 'Definition'), doc,
    el('label', { for: 'new-api-file' }, 'or upload a file'), file,
    el('div', { class: 'actions' }, submit), out);
  }
  async function deleteAPI(id) {
    if (!confirm('Delete API ' + id + '?')) return;
    try {
      await call('DELETE', '/v5/ase/api?api_id=' + encodeURIComponent(id));
      toast('API ' + id + ' deleted');
      if (location.hash === '#/apis') route(); else location.hash = '#/apis';
    } catch (e) {
      toast('Could not delete ' + id + ': ' + e.message);
    }
  }
  async function apiPage(id) {
    const box = el('div', {}, el('p', { class: 'muted' }, 'Loading…'));
    main.replaceChildren(el('h1', {}, 'API ', el('code', {}, id)), box);
    let def;
    try {
      def = await call('GET', '/v5/ase/api?api_id=' + encodeURIComponent(id));
    } catch (e) {
      box.replaceChildren(el('p', { class: 'error' }, e.message), el('a', { href: '#/apis' }, 'All APIs'));
      return;
    }
    const text = JSON.stringify(def, null, 2);
    const edit = el('textarea', { id: 'edit-api-json', spellcheck: 'false' });
    edit.value = text;
    const out = el('p', { id: 'edit-api-result', role: 'alert' });
    const save = writeButton('Save', { class: 'primary', id: 'edit-api-save' }, async () => {
      out.className = '';
      out.textContent = '';
      try {
        await call('PUT', '/v5/ase/api?api_id=' + encodeURIComponent(id), edit.value);
        out.className = 'ok';
        out.textContent = 'Saved.';
      } catch (e) {
        out.className = 'error';
        out.textContent = e.message;
      }
    });
    box.replaceChildren(
      el('div', { class: 'actions' }, el('a', { href: '#/apis' }, '← All APIs'), writeButton('Delete', { class: 'danger', id: 'delete-api' }, () => deleteAPI(id))),
      el('section', { class: 'card' }, el('h2', {}, 'Definition'), el('label', { for: 'edit-api-json' }, 'Edit and save (the whole definition is replaced)'), edit,
        el('div', { class: 'actions' }, save), out));
  }

  // ---- routing ----
  const pages = { overview: overviewPage, apis: apisPage };
  async function route() {
    stopPage();
    stopPage = () => {};
    const parts = (location.hash || '#/overview').slice(2).split('/').map(decodeURIComponent);
    const page = pages[parts[0]] ? parts[0] : 'overview';
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
    const stop = await pages[page](parts[1]);
    if (typeof stop === 'function') stopPage = stop;
    main.focus();
  }
  window.addEventListener('hashchange', route);
  route();
})();

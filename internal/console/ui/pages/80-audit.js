// Audit: who changed what, newest first, from GET /v5/ase/audit, a page
// at a time (the log is read from its end on the server, never whole),
// filtered by user and by action; older pages through the server's
// cursor, newer ones by going back.
'use strict';
(() => {
  const { el, call, APIError, register, main } = window.ASE;
  const SIZES = [25, 50, 100, 200];
  // Actions the log holds beyond the routes' (which the API description
  // names): a transaction's end.
  const MORE_ACTIONS = ['commit_transaction', 'rollback_transaction'];
  let actionNames = null; // from /v5/ase/openapi.json, once

  async function knownActions() {
    if (actionNames) return actionNames;
    const names = new Set(MORE_ACTIONS);
    try {
      const doc = await call('GET', '/v5/ase/openapi.json');
      for (const ops of Object.values(doc.paths || {})) {
        for (const op of Object.values(ops)) if (op['x-ase-audit-action']) names.add(op['x-ase-audit-action']);
      }
    } catch (e) { /* free text still works */ }
    actionNames = [...names].sort();
    return actionNames;
  }

  // Parameters in one line: "api_id=shop, definition={…}".
  function summary(params) {
    if (!params) return '';
    return Object.entries(params).map(([k, v]) => {
      let s = typeof v === 'string' ? v : JSON.stringify(v);
      if (s.length > 60) s = s.slice(0, 57) + '…';
      return k + '=' + s;
    }).join(', ');
  }

  function auditPage() {
    let alive = true;
    const view = { q: { user: '', action: '' }, size: 50, starts: [''], next: '', seq: 0, entries: [] };

    const user = el('input', { id: 'audit-user', type: 'search', autocomplete: 'off', spellcheck: 'false', list: 'audit-users', placeholder: 'any' });
    const users = el('datalist', { id: 'audit-users' });
    const action = el('input', { id: 'audit-action', type: 'search', autocomplete: 'off', spellcheck: 'false', list: 'audit-actions', placeholder: 'any' });
    const actions = el('datalist', { id: 'audit-actions' });
    const size = el('select', { id: 'audit-size' }, SIZES.map((n) => el('option', { value: n, selected: n === view.size }, String(n))));
    for (const f of [user, action]) f.style.maxWidth = '100%';
    knownActions().then((names) => { if (alive) actions.replaceChildren(...names.map((n) => el('option', { value: n }))); });

    const filters = el('form', { class: 'inline card', id: 'audit-filter', role: 'search', onsubmit: (ev) => {
      ev.preventDefault();
      view.q = { user: user.value.trim(), action: action.value.trim() };
      view.size = Number(size.value);
      first();
    } },
    el('div', {}, el('label', { for: 'audit-user' }, 'User'), user, users),
    el('div', {}, el('label', { for: 'audit-action' }, 'Action'), action, actions),
    el('div', {}, el('label', { for: 'audit-size' }, 'Per page'), size),
    el('button', { type: 'submit', class: 'primary', id: 'audit-search' }, 'Show'),
    el('button', { type: 'button', id: 'audit-reset', onclick: () => {
      user.value = action.value = '';
      view.q = { user: '', action: '' };
      first();
    } }, 'All entries'));

    const info = el('p', { id: 'audit-page-info', class: 'muted', 'aria-live': 'polite' }, 'Loading…');
    const tableBox = el('div', {});
    const newestBtn = el('button', { type: 'button', id: 'audit-newest', onclick: () => first() }, 'Newest');
    const newerBtn = el('button', { type: 'button', id: 'audit-newer', onclick: () => {
      if (view.starts.length > 1) {
        view.starts.pop();
        load();
      }
    } }, 'Newer');
    const olderBtn = el('button', { type: 'button', id: 'audit-older', onclick: () => {
      if (view.next) {
        view.starts.push(view.next);
        load();
      }
    } }, 'Older');
    const pager = el('div', { class: 'actions', role: 'group', 'aria-label': 'Pages' }, newestBtn, newerBtn, olderBtn);

    main.replaceChildren(el('h1', {}, 'Audit log'),
      el('p', { class: 'muted' }, 'Every configuration change and refused attempt: when, who, with which credential, from where, what, and how it ended. Secrets are masked.'),
      filters, el('section', { class: 'card' }, info, tableBox, pager));

    function first() {
      view.starts = [''];
      load();
    }
    async function load() {
      const seq = ++view.seq;
      const p = new URLSearchParams();
      if (view.q.user) p.set('user', view.q.user);
      if (view.q.action) p.set('action', view.q.action);
      p.set('limit', String(view.size));
      const before = view.starts[view.starts.length - 1];
      if (before) p.set('before', before);
      info.textContent = 'Loading…';
      for (const b of [newestBtn, newerBtn, olderBtn]) b.disabled = true;
      let page;
      try {
        page = await call('GET', '/v5/ase/audit?' + p.toString());
      } catch (e) {
        if (!alive || seq !== view.seq) return;
        info.textContent = '';
        const msg = e instanceof APIError && e.status === 404 ? e.message : 'Could not read the audit log: ' + e.message;
        tableBox.replaceChildren(el('p', { class: 'error', id: 'audit-error' }, msg));
        newestBtn.disabled = view.starts.length <= 1;
        newerBtn.disabled = view.starts.length <= 1;
        return;
      }
      if (!alive || seq !== view.seq) return;
      view.next = page.next || '';
      render(page.entries || [], page.skipped || 0);
      newestBtn.disabled = newerBtn.disabled = view.starts.length <= 1;
      olderBtn.disabled = !view.next;
    }
    function render(entries, skipped) {
      const n = view.starts.length;
      const filtered = [view.q.user && 'user ' + view.q.user, view.q.action && 'action ' + view.q.action].filter(Boolean).join(', ');
      info.textContent = (entries.length === 0 ? 'No entries' : 'Page ' + n + ': ' + entries.length + (entries.length === 1 ? ' entry' : ' entries')) +
        (filtered ? ' (' + filtered + ')' : '') + (view.next ? '; older entries follow.' : entries.length ? '; nothing older.' : '.') +
        (skipped ? ' ' + skipped + ' damaged ' + (skipped === 1 ? 'line' : 'lines') + ' of the log skipped.' : '');
      const seen = new Set([...users.options].map((o) => o.value));
      for (const e of entries) {
        if (e.user && !seen.has(e.user)) {
          seen.add(e.user);
          users.append(el('option', { value: e.user }));
        }
      }
      view.entries = entries;
      draw();
    }
    // The entries as a table; at a phone's width as a list, each entry a
    // few short lines (a table of seven columns would need sideways
    // scrolling there).
    function draw() {
      const entries = view.entries;
      if (entries.length === 0) {
        tableBox.replaceChildren();
        return;
      }
      const params = (e) => {
        const d = e.params && Object.keys(e.params).length ? el('details', {},
          el('summary', {}, summary(e.params)),
          el('pre', { class: 'json' }, JSON.stringify(e.params, null, 2))) : el('span', { class: 'muted' }, '—');
        d.style.overflowWrap = 'anywhere';
        return d;
      };
      const time = (e) => el('time', { datetime: e.time, title: e.time }, String(e.time || '').replace('T', ' ').replace(/\.\d+/, ''));
      const who = (e) => e.user || el('span', { class: 'muted' }, '(' + (e.auth || 'none') + ')');
      const result = (e) => el('span', { class: e.result === 'success' ? 'ok' : e.result === 'staged' ? 'muted' : 'error' }, e.result || '');
      const data = (e) => ({ 'data-user': e.user || '', 'data-action': e.action || '', 'data-result': e.result || '' });
      if (narrow.matches) {
        const list = el('ul', { id: 'audit-list' }, entries.map((e) => {
          const li = el('li', data(e),
            el('div', {}, time(e), ' · ', el('b', {}, who(e)), ' · ', el('code', {}, e.action || ''), ' · ', result(e)),
            el('div', { class: 'muted' }, (e.via || '') + (e.auth ? ' · ' + e.auth : '') + (e.client ? ' · ' + e.client : '')),
            params(e));
          Object.assign(li.style, { padding: '.4rem 0', borderBottom: '1px solid var(--line)', overflowWrap: 'anywhere' });
          return li;
        }));
        Object.assign(list.style, { listStyle: 'none', margin: '0', padding: '0' });
        tableBox.replaceChildren(list);
        return;
      }
      tableBox.replaceChildren(el('div', { class: 'table-wrap' }, el('table', { id: 'audit-list' },
        el('thead', {}, el('tr', {}, el('th', {}, 'Time'), el('th', {}, 'User'), el('th', {}, 'Action'), el('th', {}, 'Result'),
          el('th', {}, 'Via'), el('th', {}, 'From'), el('th', {}, 'Parameters'))),
        el('tbody', {}, entries.map((e) => {
          const pcell = el('td', {}, params(e));
          pcell.style.minWidth = '14rem';
          pcell.style.maxWidth = '32rem';
          const t = el('td', {}, time(e));
          t.style.whiteSpace = 'nowrap';
          return el('tr', data(e), t, el('td', {}, who(e)), el('td', {}, el('code', {}, e.action || '')), el('td', {}, result(e)),
            el('td', {}, (e.via || '') + (e.auth ? ' · ' + e.auth : '')), el('td', {}, e.client || ''), pcell);
        })))));
    }
    const narrow = window.matchMedia('(max-width: 600px)');
    narrow.addEventListener('change', draw);

    first();
    return () => {
      alive = false;
      narrow.removeEventListener('change', draw);
    };
  }

  register('audit', 'Audit', 80, auditPage);
})();

// Deny and allow lists: one page of entries at a time from the server
// (a list may hold a million: it is never read whole), searched by value
// and filtered by tag and type on the server; adding and deleting an
// entry; the bulk import of a feed file (a JSON array of entries or a
// plain-text feed) with its upload's progress, all or nothing.
'use strict';
(() => {
  const { el, toast, writeButton, canWrite, call, register, main, relative } = window.ASE;

  const LISTS = {
    blacklist: { label: 'Deny list', noun: 'deny list (blacklist)' },
    whitelist: { label: 'Allow list', noun: 'allow list (whitelist)' },
  };
  const TYPES = ['ip', 'token', 'cookie', 'api_key', 'username'];
  const TAGS = ['manual', 'abs_generated', 'invalid_content_type', 'invalid_method', 'invalid_protocol', 'decoy'];
  const PAGE = 50;
  // A page reads at most 200,000 keys on the server: a filter few entries
  // pass gives short (even empty) pages with a cursor. The page follows
  // them to fill itself, up to this many requests (a million keys).
  const HOPS = 5;
  const READ_ONLY = 'Your role (read) sees everything and changes nothing';

  const path = (list) => '/v5/ase/firewall/' + list;
  const describe = (e) => e.type + (e.name ? ' ' + e.name : '') + ' ' + e.value;
  // An entry as the add and delete endpoints take it.
  const ident = (e) => (e.name ? { type: e.type, name: e.name, value: e.value } : { type: e.type, value: e.value });

  // A time as the server gives it (in its configured timezone), and how
  // far it is from now beneath (or in its title only).
  function timeCell(iso, none, below) {
    if (!iso) return el('td', { class: 'muted' }, none);
    return el('td', { title: relative(iso) }, el('time', { datetime: iso }, iso), below ? [el('br'), el('small', { class: 'muted' }, relative(iso))] : null);
  }
  // A cell that does not wrap: the table scrolls sideways instead.
  function cell(...kids) {
    const td = el('td', {}, ...kids);
    td.style.whiteSpace = 'nowrap';
    return td;
  }

  // The server's sentence for a failed change, its problems one a line
  // ("[3].value: ...; [7].type: ..." or "line 3: ...; line 9: ...").
  function problems(msg) {
    return String(msg).split(/; (?=\[\d+\]|line \d+:|and \d+ more )/);
  }
  // An API error's sentence, with its detail when it has one ("json
  // parsing error: ...", "query parameter type contains invalid value: ...").
  const why = (e) => e.message + (e.data && e.data.detail ? ': ' + e.data.detail : '');
  function showError(out, msg) {
    out.className = 'error';
    const lines = problems(msg);
    if (lines.length === 1) {
      out.replaceChildren(msg);
      return;
    }
    out.replaceChildren(el('span', {}, 'Nothing was added: ' + lines.length + ' problems'),
      el('ul', {}, lines.map((l) => el('li', {}, l))));
  }

  function reasonCell(text) {
    const td = el('td', {}, text);
    td.style.minWidth = '12rem';
    td.style.maxWidth = '28rem';
    td.style.overflowWrap = 'anywhere';
    return td;
  }

  // A fieldset that disables every control of a form for the read role.
  function controls(...kids) {
    const f = el('fieldset', { disabled: !canWrite(), title: canWrite() ? null : READ_ONLY }, ...kids);
    f.style.border = '0';
    f.style.margin = '0';
    f.style.padding = '0';
    f.style.minWidth = '0';
    return f;
  }

  function listsPage(arg) {
    const list = LISTS[arg] ? arg : 'blacklist';
    const view = {
      q: { value: '', type: '', tag: '' },
      starts: [''], // the cursor each page shown so far began at
      next: '',
      seq: 0,
      loading: false,
    };
    let alive = true;

    // ---- which list ----
    const switcher = el('div', { class: 'actions', role: 'group', 'aria-label': 'Which list' },
      Object.entries(LISTS).map(([k, l]) => el('button', {
        type: 'button', id: 'list-' + k, class: k === list ? 'primary' : null, 'aria-pressed': String(k === list),
        onclick: () => { location.hash = '#/lists/' + k; },
      }, l.label + ' (' + k + ')')));

    // ---- search and filters ----
    const value = el('input', { id: 'lists-value', type: 'search', placeholder: 'part of a value', autocomplete: 'off', spellcheck: 'false' });
    const type = el('select', { id: 'lists-type' }, el('option', { value: '' }, 'any'), TYPES.map((t) => el('option', { value: t }, t)));
    const tag = el('select', { id: 'lists-tag', disabled: list === 'whitelist' },
      el('option', { value: '' }, 'any'), (list === 'blacklist' ? TAGS : ['manual']).map((t) => el('option', { value: t }, t)));
    const filters = el('form', { class: 'inline', id: 'lists-filter', role: 'search', onsubmit: (ev) => {
      ev.preventDefault();
      view.q = { value: value.value, type: type.value, tag: tag.value };
      first();
    } },
    el('div', {}, el('label', { for: 'lists-value' }, 'Value contains'), value),
    el('div', {}, el('label', { for: 'lists-type' }, 'Type'), type),
    el('div', {}, el('label', { for: 'lists-tag' }, 'Tag'), tag),
    el('button', { type: 'submit', class: 'primary', id: 'lists-search' }, 'Search'),
    el('button', { type: 'button', id: 'lists-reset', onclick: () => {
      value.value = '';
      type.value = '';
      tag.value = '';
      view.q = { value: '', type: '', tag: '' };
      first();
    } }, 'Show all'));

    // ---- the table and its pages ----
    const info = el('p', { id: 'lists-page-info', class: 'muted', 'aria-live': 'polite', tabindex: -1 }, 'Loading…');
    const tableBox = el('div', {});
    const firstBtn = el('button', { type: 'button', id: 'lists-first', onclick: () => first() }, 'First page');
    const prevBtn = el('button', { type: 'button', id: 'lists-prev', onclick: () => {
      if (!view.loading && view.starts.length > 1) {
        view.starts.pop();
        load();
      }
    } }, 'Previous page');
    const nextBtn = el('button', { type: 'button', id: 'lists-next', onclick: () => {
      if (!view.loading && view.next) {
        view.starts.push(view.next);
        load();
      }
    } }, 'Next page');
    const pager = el('div', { class: 'actions' }, firstBtn, prevBtn, nextBtn);

    function first() {
      view.starts = [''];
      return load();
    }
    function query(cursor, limit) {
      const p = new URLSearchParams();
      if (view.q.value) p.set('value', view.q.value);
      if (view.q.type) p.set('type', view.q.type);
      if (view.q.tag && list === 'blacklist') p.set('tag', view.q.tag);
      p.set('limit', String(limit));
      if (cursor) p.set('cursor', cursor);
      return path(list) + '?' + p.toString();
    }
    // load shows the page that starts at the last cursor of view.starts.
    // The pager's buttons stay enabled meanwhile (a disabled button loses
    // the keyboard's focus); Next and Previous wait for the page.
    async function load() {
      const seq = ++view.seq;
      const start = view.starts[view.starts.length - 1];
      const pagerFocus = pager.contains(document.activeElement);
      view.loading = true;
      tableBox.setAttribute('aria-busy', 'true');
      info.className = 'muted';
      info.textContent = 'Loading…';
      const entries = [];
      let cursor = start;
      try {
        for (let hop = 0; hop < HOPS; hop++) {
          const data = await call('GET', query(cursor, PAGE - entries.length));
          if (!alive || seq !== view.seq) return;
          cursor = (data && data.next_cursor) || '';
          for (const [k, es] of Object.entries(data || {})) {
            if (k !== 'next_cursor' && Array.isArray(es)) entries.push(...es);
          }
          if (!cursor || entries.length >= PAGE) break;
        }
      } catch (e) {
        if (!alive || seq !== view.seq) return;
        view.loading = false;
        tableBox.removeAttribute('aria-busy');
        info.className = 'error';
        info.textContent = 'Could not read the ' + LISTS[list].noun + ': ' + why(e);
        view.next = '';
        nextBtn.disabled = true;
        return;
      }
      view.loading = false;
      tableBox.removeAttribute('aria-busy');
      view.next = cursor;
      render(entries);
      // Paging with the keyboard: the focus stays in the pager, on Next
      // while there is a next page.
      if (pagerFocus && (!pager.contains(document.activeElement) || document.activeElement.disabled)) {
        (nextBtn.disabled ? (prevBtn.disabled ? info : prevBtn) : nextBtn).focus();
      }
    }
    function render(entries) {
      const n = view.starts.length;
      const filtered = view.q.value || view.q.type || view.q.tag;
      const from = (n - 1) * PAGE;
      const what = filtered ? 'matching entries' : 'entries';
      if (entries.length === 0) {
        info.textContent = n === 1 && !view.next ? 'No ' + what + '.' : 'Page ' + n + ': no ' + what + (view.next ? ' here; more may follow.' : '; the end of the list.');
      } else {
        const range = entries.length === 1 ? what.replace(/ies$/, 'y') + ' ' + (from + 1).toLocaleString('en') :
          what + ' ' + (from + 1).toLocaleString('en') + '–' + (from + entries.length).toLocaleString('en');
        info.textContent = 'Page ' + n + ': ' + range +
          (view.next ? ', more follow.' : ', the end of the list.');
      }
      info.className = 'muted';
      firstBtn.disabled = n === 1;
      prevBtn.disabled = n === 1;
      nextBtn.disabled = !view.next;
      if (entries.length === 0) {
        tableBox.replaceChildren();
        return;
      }
      const rows = entries.map((e) => el('tr', { 'data-type': e.type, 'data-name': e.name || '', 'data-value': e.value, 'data-tag': e.tag || '' },
        cell(e.type),
        cell(e.name || ''),
        cell(el('code', {}, e.value)),
        cell(e.tag || ''),
        reasonCell(e.reason || ''),
        timeCell(e.created_at, '—', false),
        timeCell(e.expires_at, 'never', true),
        el('td', {}, writeButton('Delete', { class: 'danger', 'data-delete': describe(e), 'aria-label': 'Delete ' + describe(e) }, () => remove(e)))));
      const table = el('table', { id: 'lists-entries' },
        el('caption', { class: 'muted' }, LISTS[list].label + ', page ' + n),
        el('thead', {}, el('tr', {}, ['type', 'name', 'value', 'tag', 'reason', 'created', 'expires', ''].map((h) => el('th', { scope: 'col' }, h)))),
        el('tbody', {}, rows));
      table.querySelector('caption').style.textAlign = 'left';
      tableBox.replaceChildren(el('div', { class: 'table-wrap' }, table));
    }
    async function remove(e) {
      if (!confirm('Delete ' + describe(e) + ' from the ' + LISTS[list].noun + '?')) return;
      try {
        const r = await call('DELETE', path(list), ident(e));
        toast((r && r.status_message) || describe(e) + ' deleted');
      } catch (err) {
        toast('Could not delete ' + describe(e) + ': ' + why(err));
      }
      if (!alive) return;
      await load();
      // The row (and its button) is gone: the keyboard goes on from the
      // page's sentence, above the table.
      if (alive && (!document.activeElement || document.activeElement === document.body)) info.focus();
    }

    // ---- adding an entry ----
    const addType = el('select', { id: 'add-type' }, TYPES.map((t) => el('option', { value: t }, t)));
    const addName = el('input', { id: 'add-name', autocomplete: 'off', spellcheck: 'false', placeholder: 'e.g. JSESSIONID, X-API-KEY' });
    const addValue = el('input', { id: 'add-value', required: true, autocomplete: 'off', spellcheck: 'false', placeholder: 'e.g. 203.0.113.7 or 203.0.113.0/24' });
    const addTTL = el('input', { id: 'add-ttl', autocomplete: 'off', spellcheck: 'false', placeholder: 'never expires', size: 10, 'aria-describedby': 'add-ttl-help' });
    const addReason = el('input', { id: 'add-reason', autocomplete: 'off', maxlength: 1024, placeholder: 'why (for people)' });
    const nameBox = el('div', {}, el('label', { for: 'add-name' }, 'Name (cookie or header)'), addName);
    const examples = { ip: 'e.g. 203.0.113.7 or 203.0.113.0/24', token: 'the bearer token', cookie: 'the cookie\'s value', api_key: 'the key', username: 'e.g. alice' };
    const named = () => {
      addValue.placeholder = examples[addType.value];
      const on = addType.value === 'cookie' || addType.value === 'api_key';
      nameBox.hidden = !on;
      addName.required = on;
    };
    addType.addEventListener('change', named);
    named();
    const addOut = el('p', { id: 'add-result', role: 'alert' });
    const addForm = el('form', { class: 'card', id: 'lists-add', onsubmit: async (ev) => {
      ev.preventDefault();
      addOut.className = '';
      addOut.textContent = '';
      const body = { type: addType.value, value: addValue.value.trim() };
      if (!nameBox.hidden) body.name = addName.value.trim();
      if (addTTL.value.trim()) body.ttl = addTTL.value.trim();
      if (addReason.value) body.reason = addReason.value;
      try {
        const r = await call('POST', path(list), body);
        addOut.className = 'ok';
        addOut.textContent = (r && r.status_message) || 'Added.';
        for (const input of [addName, addValue, addTTL, addReason]) input.value = '';
        if (alive) load();
      } catch (e) {
        showError(addOut, why(e));
      }
    } },
    el('h2', {}, 'Add to the ' + LISTS[list].noun),
    controls(el('div', { class: 'inline' },
      el('div', {}, el('label', { for: 'add-type' }, 'Type'), addType),
      nameBox,
      el('div', {}, el('label', { for: 'add-value' }, 'Value'), addValue),
      el('div', {}, el('label', { for: 'add-ttl' }, 'TTL (optional)'), addTTL),
      el('div', {}, el('label', { for: 'add-reason' }, 'Reason (optional)'), addReason),
      el('button', { type: 'submit', class: 'primary', id: 'add-submit' }, 'Add'))),
    el('p', { class: 'muted', id: 'add-ttl-help' }, 'TTL: seconds or a duration such as 4h, 90m, 1h30m or 7d; empty: the entry never expires.'),
    addOut);
    // The form's inner row lays out as the inline forms do.
    const row = addForm.querySelector('div.inline');
    Object.assign(row.style, { display: 'flex', flexWrap: 'wrap', gap: '.5rem', alignItems: 'flex-end' });
    for (const l of row.querySelectorAll('label')) l.style.margin = '0';

    // ---- bulk import ----
    const file = el('input', { id: 'import-file', type: 'file', accept: '.json,.txt,.netset,.ipset,.list,application/json,text/plain' });
    const impTTL = el('input', { id: 'import-ttl', autocomplete: 'off', spellcheck: 'false', placeholder: 'never expires', size: 10 });
    const impReason = el('input', { id: 'import-reason', autocomplete: 'off', maxlength: 1024, placeholder: 'e.g. the feed\'s name' });
    const progress = el('progress', { id: 'import-progress', max: 100, value: 0, 'aria-label': 'Upload progress' });
    progress.style.width = '100%';
    progress.style.maxWidth = '30rem';
    const progressText = el('span', { id: 'import-progress-text', class: 'muted' }, '');
    const impOut = el('div', { id: 'import-result', role: 'alert' });
    const importBtn = el('button', { type: 'submit', class: 'primary', id: 'import-submit' }, 'Import');
    const importForm = el('form', { class: 'card', id: 'lists-import', onsubmit: async (ev) => {
      ev.preventDefault();
      impOut.className = '';
      impOut.replaceChildren();
      if (!file.files.length) {
        impOut.className = 'error';
        impOut.textContent = 'Choose a feed file first.';
        file.focus();
        return;
      }
      const f = file.files[0];
      // JSON by its first character, as the CLI decides; else a feed.
      const head = (await f.slice(0, 4096).text()).replace(/^\ufeff/, '').trimStart();
      const json = head.startsWith('[') || head.startsWith('{');
      const p = new URLSearchParams();
      if (impTTL.value.trim()) p.set('ttl', impTTL.value.trim());
      if (impReason.value) p.set('reason', impReason.value);
      const url = path(list) + (p.toString() ? '?' + p.toString() : '');
      progress.value = 0;
      progress.max = 100;
      progressText.textContent = 'Uploading ' + f.name + ' (' + Math.ceil(f.size / 1024).toLocaleString('en') + ' KiB)…';
      importBtn.disabled = true;
      const req = new XMLHttpRequest();
      req.open('POST', url);
      req.withCredentials = true;
      req.setRequestHeader('Content-Type', json ? 'application/json' : 'text/plain');
      req.upload.addEventListener('progress', (e) => {
        if (e.lengthComputable) {
          progress.max = e.total;
          progress.value = e.loaded;
        }
      });
      req.upload.addEventListener('load', () => {
        progress.value = progress.max;
        progressText.textContent = 'Uploaded; the server checks and writes the entries…';
      });
      // Leaving the page does not cancel an import: its result comes as a
      // toast then.
      const done = (fn, summary) => () => {
        importBtn.disabled = false;
        if (alive) fn();
        else toast(f.name + ': ' + summary());
      };
      const answer = () => {
        let data = null;
        try { data = JSON.parse(req.responseText); } catch (e) { data = null; }
        const msg = data && (data.status_message || (data.error && data.error.message));
        if (msg) return msg + (data.detail ? ': ' + data.detail : '');
        return req.responseText || req.statusText || 'HTTP ' + req.status;
      };
      req.addEventListener('load', done(() => {
        const msg = answer();
        if (req.status >= 200 && req.status < 300) {
          progress.value = progress.max;
          progressText.textContent = f.name + ': done.';
          impOut.className = 'ok';
          impOut.textContent = msg;
          file.value = '';
          load();
        } else {
          progressText.textContent = f.name + ': refused (HTTP ' + req.status + ').';
          showError(impOut, msg);
        }
      }, answer));
      const failed = (what) => done(() => {
        progressText.textContent = '';
        impOut.className = 'error';
        impOut.textContent = 'The upload ' + what + ': look at the list to see whether the import was made.';
      }, () => 'the upload ' + what);
      req.addEventListener('error', failed('failed'));
      req.addEventListener('abort', failed('was cancelled'));
      req.send(f);
    } },
    el('h2', {}, 'Import a feed into the ' + LISTS[list].noun),
    el('p', { class: 'muted' }, 'A JSON array of entries, or a plain-text feed (one IP address or CIDR range a line; # and ; start comments). All or nothing: if any entry is wrong, nothing is added and the bad entries are named. Entries already listed are skipped.'),
    controls(
      el('label', { for: 'import-file' }, 'Feed file'), file,
      el('div', { class: 'inline' },
        el('div', {}, el('label', { for: 'import-ttl' }, 'TTL for entries without one (optional)'), impTTL),
        el('div', {}, el('label', { for: 'import-reason' }, 'Reason for entries without one (optional)'), impReason)),
      el('div', { class: 'actions' }, importBtn)),
    el('div', {}, progress, ' ', progressText),
    impOut);
    file.style.maxWidth = '100%';
    const irow = importForm.querySelector('div.inline');
    Object.assign(irow.style, { display: 'flex', flexWrap: 'wrap', gap: '.5rem', alignItems: 'flex-end' });
    for (const input of [addReason, impReason]) input.style.maxWidth = '100%';

    main.replaceChildren(
      el('h1', {}, 'Deny and allow lists'),
      switcher,
      el('section', { class: 'card', 'aria-labelledby': 'lists-heading' },
        el('h2', { id: 'lists-heading' }, LISTS[list].label + ' entries'),
        filters, info, tableBox, pager),
      addForm,
      importForm);
    if (!canWrite()) {
      main.querySelector('#lists-heading').after(el('p', { class: 'muted', id: 'lists-read-only' }, READ_ONLY + '.'));
    }
    first();
    return () => { alive = false; };
  }

  register('lists', 'Lists', 40, listsPage);
})();

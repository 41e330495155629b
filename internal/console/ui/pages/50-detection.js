// Detection: behavioural detection (README "Behavioural detection"). Its
// two switches (detection on or off; what it finds deny-listed or only
// reported); the attack list (GET /v4/abs/attacklist), newest first and
// filtered by status, each row opening onto its evidence, an active one
// cleared (DELETE /v4/abs/attacklist with its identity); and each API's
// state: training or enforcing, each detector's mode, each figure's
// threshold per kind of identity, with a form to set a mode or a
// threshold override (the rest of the policy kept), reset the policy or
// train again. Read users see everything and are offered no change.
'use strict';
(() => {
  const { el, toast, fmt, writeButton, canWrite, call, register, main, when, relative } = window.ASE;
  const READ_ONLY = 'Your role (read) sees everything and changes nothing';
  const STATUSES = ['active', 'expired', 'reported'];
  // The attack list's sections: its key, the identity's type, and how
  // a delete names one of them.
  const KINDS = [
    { key: 'ips', type: 'ip', id: (a) => ({ value: a.ip }), body: (i) => i.value },
    { key: 'cookies', type: 'cookie', id: (a) => ({ name: a.cookie_name, value: a.cookie }), body: (i) => ({ name: i.name, value: i.value }) },
    { key: 'oauth_tokens', type: 'token', id: (a) => ({ value: a.token }), body: (i) => i.value },
    { key: 'api_keys', type: 'api_key', id: (a) => ({ name: a.api_key_name, value: a.api_key }), body: (i) => ({ name: i.name, value: i.value }) },
    { key: 'usernames', type: 'username', id: (a) => ({ value: a.username }), body: (i) => i.value },
  ];
  const IDENTITIES = ['ip', 'token', 'cookie', 'api_key', 'username'];
  const DETECTORS = ['stolen_credential', 'login_attack', 'api_probing', 'extreme_client_activity', 'data_exfiltration', 'content_scraping'];
  const FIGURES = ['distinct_ips', 'failed_logins', 'failing_clients', 'error_paths', 'requests', 'response_bytes', 'distinct_paths'];
  const MODES = ['enforce', 'report', 'off'];
  const MODE_BADGE = { enforce: 'up', report: 'unknown', off: 'down' };

  const describe = (i) => i.type + (i.name ? ' ' + i.name : '') + ' ' + i.value;
  const why = (e) => e.message;
  const apiPath = (id) => '/v5/ase/abs/' + encodeURIComponent(id);

  function timeCell(iso, none) {
    if (!iso) return el('td', { class: 'muted' }, none);
    const td = el('td', { title: relative(iso) }, el('time', { datetime: iso }, when(iso)), el('br'), el('small', { class: 'muted' }, relative(iso)));
    td.style.whiteSpace = 'nowrap';
    return td;
  }
  // A figure's value: bytes in their unit, the others as counts.
  function figureValue(figure, v) {
    if (typeof v !== 'number' || !Number.isFinite(v)) return '—';
    if (figure !== 'response_bytes' || v < 1024) return fmt(v) + (figure === 'response_bytes' ? ' B' : '');
    const units = ['KiB', 'MiB', 'GiB', 'TiB'];
    let u = -1;
    while (v >= 1024 && u < units.length - 1) {
      v /= 1024;
      u++;
    }
    return fmt(v) + ' ' + units[u];
  }
  const badge = (mode) => el('span', { class: 'badge ' + (MODE_BADGE[mode] || 'unknown') }, mode || '?');
  // A row of labelled controls, laid out as the inline forms are.
  function row(...kids) {
    const d = el('div', {}, ...kids);
    Object.assign(d.style, { display: 'flex', flexWrap: 'wrap', gap: '.5rem', alignItems: 'flex-end' });
    d.style.margin = '.5rem 0';
    for (const l of d.querySelectorAll('label')) l.style.margin = '0';
    return d;
  }

  function detectionPage(arg) {
    let alive = true;
    const view = { status: '', seq: 0, open: new Set(), api: arg || '', info: null, policyMsg: null };

    const settings = el('section', { class: 'card', id: 'abs-settings', 'aria-labelledby': 'abs-settings-h' },
      el('h2', { id: 'abs-settings-h' }, 'Settings'), el('p', { class: 'muted' }, 'Loading…'));

    // ---- the attack list ----
    const status = el('select', { id: 'abs-status' }, el('option', { value: '' }, 'all'), STATUSES.map((s) => el('option', { value: s }, s)));
    status.addEventListener('change', () => {
      view.status = status.value;
      loadAttacks();
    });
    const filters = el('form', { class: 'inline', id: 'abs-filter', role: 'search', onsubmit: (ev) => {
      ev.preventDefault();
      view.status = status.value;
      loadAttacks();
    } },
    el('div', {}, el('label', { for: 'abs-status' }, 'Status'), status),
    el('button', { type: 'submit', id: 'abs-refresh' }, 'Refresh'));
    const attacksInfo = el('p', { id: 'abs-attacks-info', class: 'muted', 'aria-live': 'polite', tabindex: -1 }, 'Loading…');
    const attacksBox = el('div', {});
    const attacks = el('section', { class: 'card', id: 'abs-attacks', 'aria-labelledby': 'abs-attacks-h' },
      el('h2', { id: 'abs-attacks-h' }, 'Attack list'),
      el('p', { class: 'muted' }, 'Clients found attacking: active (on the deny list, tag abs_generated), expired (listed before, not any more) or reported (found in report mode, never listed). Clearing an entry lets the client in again until it is found again; to stop a false positive recurring, allow-list it.'),
      filters, attacksInfo, attacksBox);

    // ---- APIs ----
    const apis = el('section', { class: 'card', id: 'abs-apis', 'aria-labelledby': 'abs-apis-h' },
      el('h2', { id: 'abs-apis-h' }, 'APIs'), el('p', { class: 'muted' }, 'Loading…'));
    const apiBox = el('div', { id: 'abs-api-box' });

    main.replaceChildren(...[el('h1', {}, 'Behavioural detection'),
      canWrite() ? null : el('p', { class: 'muted', id: 'abs-read-only' }, READ_ONLY + '.'),
      settings, attacks, apis, apiBox].filter(Boolean));

    // ---- settings and APIs, from GET /v5/ase/abs ----
    async function loadInfo() {
      let info;
      try {
        info = await call('GET', '/v5/ase/abs');
      } catch (e) {
        if (!alive) return;
        settings.replaceChildren(el('h2', { id: 'abs-settings-h' }, 'Settings'), el('p', { class: 'error', id: 'abs-info-error' }, 'Could not read behavioural detection: ' + why(e)));
        apis.replaceChildren(el('h2', { id: 'abs-apis-h' }, 'APIs'), el('p', { class: 'error' }, why(e)));
        apiBox.replaceChildren();
        return;
      }
      if (!alive) return;
      view.info = info;
      drawSettings(info);
      drawAPIs(info);
    }

    function drawSettings(info) {
      const out = el('p', { id: 'abs-settings-result', role: 'alert' });
      const toggle = (id, what, on, path, onLabel, offLabel, warn) => {
        if (!canWrite()) return null;
        return writeButton(on ? offLabel : onLabel, { id, class: on ? 'danger' : 'primary' }, async () => {
          if (on && !confirm(warn)) return;
          out.className = '';
          out.textContent = '';
          try {
            const r = await call('POST', path + '?status=' + (on ? 'disable' : 'enable'));
            toast((r && r.status_message) || what + ' changed');
          } catch (e) {
            out.className = 'error';
            out.textContent = 'Could not change it: ' + why(e);
          }
          if (alive) loadInfo();
        });
      };
      const ttl = Object.entries(info.ttl || {}).map(([k, v]) => k + ' ' + (v === '0' ? 'never' : v)).join(', ');
      settings.replaceChildren(el('h2', { id: 'abs-settings-h' }, 'Settings'),
        el('div', { class: 'actions' },
          el('p', { id: 'abs-enabled', 'data-on': String(!!info.enabled) }, 'Detection is ',
            el('b', { class: info.enabled ? 'ok' : 'error' }, info.enabled ? 'enabled' : 'disabled'),
            info.enabled ? ': requests are counted and checked.' : ': nothing is counted or found.'),
          toggle('abs-toggle', 'Detection', !!info.enabled, '/v5/ase/firewall/abs', 'Enable detection', 'Disable detection',
            'Disable behavioural detection? Nothing will be counted or found until it is enabled again.')),
        el('div', { class: 'actions' },
          el('p', { id: 'abs-enforcing', 'data-on': String(!!info.enforcing) }, 'What it finds is ',
            el('b', { class: info.enforcing ? 'ok' : 'error' }, info.enforcing ? 'deny-listed (enforcing)' : 'reported only'),
            info.enforcing ? ' (detectors in enforce mode), under the tag abs_generated.' : ': nobody is refused; detections are audited and listed as reported.'),
          toggle('abs-enforce-toggle', 'Enforcing', !!info.enforcing, '/v5/ase/firewall/abs_attack', 'Enforce (deny-list what is found)', 'Report only',
            'Report only? What detection finds will no longer be refused, only reported.')),
        el('p', { class: 'muted', id: 'abs-config' },
          'Training period ' + (info.training_period || '?') + ', window ' + (info.window || '?') +
          ', tracking ' + fmt(info.tracked_clients || 0) + ' of at most ' + fmt(info.max_clients || 0) + ' client identities' +
          (ttl ? '; listed for: ' + ttl : '') + '.'),
        out);
      for (const p of settings.querySelectorAll('div.actions p')) p.style.margin = '0';
      for (const d of settings.querySelectorAll('div.actions')) d.style.alignItems = 'center';
    }

    function drawAPIs(info) {
      const list = info.apis || [];
      if (list.length === 0) {
        apis.replaceChildren(el('h2', { id: 'abs-apis-h' }, 'APIs'),
          el('p', { class: 'muted', id: 'abs-no-apis' }, info.enabled ? 'No APIs yet.' : 'No APIs tracked: detection is disabled.'));
        apiBox.replaceChildren();
        return;
      }
      if (!list.some((a) => a.api_id === view.api)) view.api = list[0].api_id;
      const rows = list.map((a) => {
        const changed = Object.entries(a.modes || {}).filter(([, m]) => m !== 'enforce');
        const overrides = [...new Set((a.figures || []).filter((f) => f.override).map((f) => f.figure + ' ' + figureValue(f.figure, f.threshold)))];
        return el('tr', { 'data-api': a.api_id, 'data-training': String(!!a.training), 'aria-current': a.api_id === view.api ? 'true' : null },
          el('td', {}, el('a', { href: '#/detection/' + encodeURIComponent(a.api_id) }, a.api_id)),
          el('td', {}, a.training ? 'training until ' + when(a.training_until) : 'enforcing'),
          el('td', {}, changed.length ? changed.map(([d, m]) => d + ' ' + m).join(', ') : el('span', { class: 'muted' }, 'every detector enforces')),
          el('td', {}, overrides.length ? overrides.join(', ') : el('span', { class: 'muted' }, 'learned')));
      });
      const select = el('select', { id: 'abs-api-select' }, list.map((a) => el('option', { value: a.api_id, selected: a.api_id === view.api }, a.api_id)));
      select.addEventListener('change', () => { location.hash = '#/detection/' + encodeURIComponent(select.value); });
      apis.replaceChildren(el('h2', { id: 'abs-apis-h' }, 'APIs'),
        el('div', { class: 'table-wrap' }, el('table', { id: 'abs-api-list' },
          el('thead', {}, el('tr', {}, ['API', 'State', 'Modes', 'Thresholds'].map((h) => el('th', { scope: 'col' }, h)))),
          el('tbody', {}, rows))),
        row(el('div', {}, el('label', { for: 'abs-api-select' }, 'Details of'), select)));
      drawAPI(list.find((a) => a.api_id === view.api));
    }

    // ---- one API ----
    function drawAPI(a) {
      const id = a.api_id;
      const now = Date.now();
      const until = a.training_until ? new Date(a.training_until).getTime() : NaN;
      const state = a.training ?
        el('p', { id: 'abs-training', 'data-training': 'true' }, el('b', {}, 'Training'), ' until ', el('time', { datetime: a.training_until }, when(a.training_until)),
          ' (' + relative(a.training_until) + '): learning its normal traffic; until then only threshold overrides are enforced.') :
        el('p', { id: 'abs-training', 'data-training': 'false' }, el('b', {}, 'Enforcing'), ' the thresholds it learned' +
          (Number.isFinite(until) && until <= now ? ' (training ended ' + when(a.training_until) + ')' : '') + ', and any override.');

      const modes = el('table', { id: 'abs-modes' },
        el('thead', {}, el('tr', {}, el('th', { scope: 'col' }, 'Detector'), el('th', { scope: 'col' }, 'Mode'), el('th', { scope: 'col' }, 'Figures'))),
        el('tbody', {}, DETECTORS.filter((d) => a.modes && a.modes[d]).concat(Object.keys(a.modes || {}).filter((d) => !DETECTORS.includes(d)))
          .map((d) => el('tr', { 'data-detector': d, 'data-mode': a.modes[d] },
            el('td', {}, el('code', {}, d)),
            el('td', {}, badge(a.modes[d])),
            el('td', {}, [...new Set((a.figures || []).filter((f) => f.detector === d).map((f) => f.figure))].join(', '))))));

      // The thresholds: a figure a row, a kind of identity a column.
      const figs = a.figures || [];
      const figNames = FIGURES.filter((f) => figs.some((x) => x.figure === f)).concat([...new Set(figs.map((x) => x.figure))].filter((f) => !FIGURES.includes(f)));
      const idNames = IDENTITIES.filter((k) => figs.some((x) => x.identity === k)).concat([...new Set(figs.map((x) => x.identity))].filter((k) => !IDENTITIES.includes(k)));
      const byKey = new Map(figs.map((f) => [f.figure + '\x00' + f.identity, f]));
      const thrRows = figNames.map((fname) => {
        const any = figs.find((x) => x.figure === fname);
        const override = figs.some((x) => x.figure === fname && x.override);
        const head = el('th', { scope: 'row', title: any.rule || '' }, el('code', {}, fname), el('br'),
          el('small', { class: 'muted' }, any.detector + (override ? ' · override' : '')));
        return el('tr', { 'data-figure': fname, 'data-override': String(override) }, head, idNames.map((k) => {
          const f = byKey.get(fname + '\x00' + k);
          if (!f) return el('td', { class: 'muted', 'data-identity': k }, 'n/a');
          const thr = f.threshold > 0 ? figureValue(fname, f.threshold) : '—';
          const td = el('td', { 'data-identity': k, 'data-threshold': String(f.threshold), 'data-learned': String(f.learned), 'data-override': String(!!f.override),
            title: f.rule || null },
          el('b', {}, thr), f.override ? el('span', { class: 'muted' }, ' (override)') : null, el('br'),
          el('small', { class: 'muted' }, 'learned ' + (f.learned > 0 ? figureValue(fname, f.learned) : '—') + ' · ' + fmt(f.windows_learned || 0) + ' windows'));
          td.style.whiteSpace = 'nowrap';
          return td;
        }));
      });
      const thresholds = el('table', { id: 'abs-thresholds' },
        el('caption', { class: 'muted' }, 'Threshold in effect per window (— : none yet, training), the learned percentile and the windows learned, per figure and kind of identity. An override applies to every kind of identity.'),
        el('thead', {}, el('tr', {}, el('th', { scope: 'col' }, 'Figure'), idNames.map((k) => el('th', { scope: 'col' }, k)))),
        el('tbody', {}, thrRows));
      thresholds.querySelector('caption').style.textAlign = 'left';

      apiBox.replaceChildren(el('section', { class: 'card', id: 'abs-api', 'data-api': id, 'aria-labelledby': 'abs-api-h' },
        el('h2', { id: 'abs-api-h' }, 'API ' + id),
        state,
        el('h3', {}, 'Detectors'),
        el('div', { class: 'table-wrap' }, modes),
        el('h3', {}, 'Thresholds'),
        el('div', { class: 'table-wrap' }, thresholds),
        canWrite() ? policyForms(a) : null));
    }

    // The policy now in effect, from the API's state: modes other than
    // enforce, and the figures overridden.
    function currentPolicy(a) {
      const p = { modes: {}, thresholds: {} };
      for (const [d, m] of Object.entries(a.modes || {})) if (m !== 'enforce') p.modes[d] = m;
      for (const f of a.figures || []) if (f.override && f.threshold > 0) p.thresholds[f.figure] = f.threshold;
      return p;
    }

    function policyForms(a) {
      const id = a.api_id;
      // The last change's result, kept across the redraw that follows it.
      const last = view.policyMsg || { cls: '', text: '' };
      view.policyMsg = null;
      const out = el('p', { id: 'abs-policy-result', role: 'alert', class: last.cls || null }, last.text);
      const show = (cls, text) => {
        out.className = cls;
        out.textContent = text;
        view.policyMsg = { cls, text };
      };
      const failed = (what, e) => show('error', what + ': ' + why(e));
      // after a change: the message, and the API's state read again.
      const done = async (msg) => {
        toast(msg);
        show('ok', msg);
        await loadInfo();
      };
      // change reads the policy afresh, changes one setting, and stores
      // it whole: the other settings stay as they are.
      async function change(edit, what) {
        show('', '');
        let r;
        try {
          const fresh = await call('GET', apiPath(id));
          const p = currentPolicy(fresh);
          edit(p);
          r = await call('PUT', apiPath(id) + '/policy', p);
        } catch (e) {
          if (alive) failed('Could not change the policy', e);
          return;
        }
        if (alive) await done((r && r.status_message) || what);
      }

      const detector = el('select', { id: 'abs-mode-detector' }, DETECTORS.map((d) => el('option', { value: d }, d)));
      const mode = el('select', { id: 'abs-mode-value' }, MODES.map((m) => el('option', { value: m }, m)));
      const syncMode = () => { mode.value = (a.modes && a.modes[detector.value]) || 'enforce'; };
      detector.addEventListener('change', syncMode);
      syncMode();
      const modeForm = el('form', { id: 'abs-mode-form', onsubmit: (ev) => {
        ev.preventDefault();
        const d = detector.value, m = mode.value;
        change((p) => {
          if (m === 'enforce') delete p.modes[d]; else p.modes[d] = m;
        }, d + ' set to ' + m);
      } },
      row(el('div', {}, el('label', { for: 'abs-mode-detector' }, 'Detector'), detector),
        el('div', {}, el('label', { for: 'abs-mode-value' }, 'Mode'), mode),
        el('button', { type: 'submit', class: 'primary', id: 'abs-mode-set' }, 'Set mode')));

      const figure = el('select', { id: 'abs-threshold-figure' }, FIGURES.map((f) => el('option', { value: f }, f)));
      const value = el('input', { id: 'abs-threshold-value', type: 'number', min: 0, max: 1e15, step: 'any', required: true, size: 12, 'aria-describedby': 'abs-threshold-help' });
      const syncValue = () => {
        const f = (a.figures || []).find((x) => x.figure === figure.value && x.override);
        value.value = f ? String(f.threshold) : '';
        value.placeholder = figure.value === 'response_bytes' ? 'bytes a window' : 'a window';
      };
      figure.addEventListener('change', syncValue);
      syncValue();
      const thrForm = el('form', { id: 'abs-threshold-form', onsubmit: (ev) => {
        ev.preventDefault();
        const f = figure.value, v = Number(value.value);
        if (!(v >= 0)) {
          show('error', 'A threshold is a number, 0 or more.');
          value.focus();
          return;
        }
        change((p) => {
          if (v === 0) delete p.thresholds[f]; else p.thresholds[f] = v;
        }, f + (v === 0 ? ' uses the learned threshold' : ' threshold set to ' + v));
      } },
      row(el('div', {}, el('label', { for: 'abs-threshold-figure' }, 'Figure'), figure),
        el('div', {}, el('label', { for: 'abs-threshold-value' }, 'Threshold override'), value),
        el('button', { type: 'submit', class: 'primary', id: 'abs-threshold-set' }, 'Set threshold')),
      el('p', { class: 'muted', id: 'abs-threshold-help' }, 'Per window, for every kind of identity; 0 removes the override (the learned threshold applies).'));

      // A confirmed change of the whole API: its question, its call, and
      // what to say when it fails or is done.
      const confirmed = (label, attrs, question, method, path, failure, success) => writeButton(label, attrs, async () => {
        if (!confirm(question)) return;
        show('', '');
        let r;
        try {
          r = await call(method, path);
        } catch (e) {
          if (alive) failed(failure, e);
          return;
        }
        if (alive) await done((r && r.status_message) || success);
      });
      const reset = confirmed('Reset policy', { id: 'abs-policy-reset', class: 'danger' },
        'Reset the detection policy of API ' + id + '? Every detector enforces, with the learned thresholds.',
        'DELETE', apiPath(id) + '/policy', 'Could not reset the policy', 'Policy reset');
      const retrain = confirmed('Train again', { id: 'abs-retrain', class: 'danger' },
        'Forget what API ' + id + ' learned and train it again (on every node)? Until training ends, only threshold overrides are enforced.',
        'POST', apiPath(id) + '/retrain', 'Could not retrain', 'Training again');
      return el('div', { id: 'abs-policy' },
        el('h3', {}, 'Policy'),
        modeForm, thrForm,
        el('div', { class: 'actions' }, reset, retrain),
        out);
    }

    // ---- the attack list ----
    async function loadAttacks() {
      const seq = ++view.seq;
      attacksInfo.className = 'muted';
      attacksInfo.textContent = 'Loading…';
      attacksBox.setAttribute('aria-busy', 'true');
      let data;
      try {
        data = await call('GET', '/v4/abs/attacklist' + (view.status ? '?status=' + encodeURIComponent(view.status) : ''));
      } catch (e) {
        if (!alive || seq !== view.seq) return;
        attacksBox.removeAttribute('aria-busy');
        attacksInfo.className = 'error';
        attacksInfo.textContent = 'Could not read the attack list: ' + why(e);
        attacksBox.replaceChildren();
        return;
      }
      if (!alive || seq !== view.seq) return;
      attacksBox.removeAttribute('aria-busy');
      const items = [];
      for (const k of KINDS) {
        for (const a of (data && data[k.key]) || []) {
          const ident = Object.assign({ type: k.type }, k.id(a));
          items.push({ a, k, ident, at: Date.parse(a.detected_time) || 0 });
        }
      }
      items.sort((x, y) => y.at - x.at);
      drawAttacks(items);
    }

    function drawAttacks(items) {
      const what = view.status ? view.status + ' ' : '';
      attacksInfo.className = 'muted';
      attacksInfo.textContent = items.length === 0 ? 'No ' + what + 'attacks.' :
        items.length + ' ' + what + (items.length === 1 ? 'attack' : 'attacks') + ', newest first.';
      if (items.length === 0) {
        attacksBox.replaceChildren();
        return;
      }
      const rows = [];
      items.forEach((it, n) => {
        const { a, ident } = it;
        const key = describe(ident) + '\x00' + a.detected_time + '\x00' + a.detector;
        const evId = 'abs-ev-' + n;
        const open = view.open.has(key);
        const evRow = el('tr', { id: evId, class: 'abs-evidence', hidden: !open }, el('td', { colspan: 8 }, evidence(a.evidence)));
        const expand = el('button', { type: 'button', 'data-evidence': describe(ident), 'aria-expanded': String(open), 'aria-controls': evId,
          'aria-label': 'Evidence of ' + describe(ident), onclick: () => {
            const now = evRow.hidden;
            evRow.hidden = !now;
            expand.setAttribute('aria-expanded', String(now));
            expand.textContent = now ? '▾' : '▸';
            if (now) view.open.add(key); else view.open.delete(key);
          } }, open ? '▾' : '▸');
        const idCell = el('td', {}, ident.type + ' ', ident.name ? [el('code', {}, ident.name), ' '] : null, el('code', {}, ident.value));
        Object.assign(idCell.style, { overflowWrap: 'anywhere', minWidth: '10rem', maxWidth: '24rem' });
        const stCell = el('td', {}, el('span', { class: a.status === 'active' ? 'error' : a.status === 'reported' ? 'muted' : '' }, a.status || ''));
        const clear = canWrite() && a.status === 'active' ?
          writeButton('Clear', { class: 'danger', 'data-clear': describe(ident), 'aria-label': 'Clear ' + describe(ident) }, () => clearOne(it)) : null;
        rows.push(el('tr', { 'data-type': ident.type, 'data-name': ident.name || '', 'data-value': ident.value, 'data-status': a.status || '', 'data-detector': a.detector || '', 'data-api': a.api_name || '' },
          el('td', {}, expand),
          idCell,
          el('td', {}, a.attack_type || el('span', { class: 'muted' }, a.detector || '—')),
          el('td', {}, a.api_name || ''),
          stCell,
          timeCell(a.detected_time, '—'),
          timeCell(a.expires, a.status === 'active' ? 'never' : '—'),
          el('td', {}, clear)));
        rows.push(evRow);
      });
      const table = el('table', { id: 'abs-attack-list' },
        el('thead', {}, el('tr', {}, ['', 'Identity', 'Attack type', 'API', 'Status', 'Detected', 'Expires', ''].map((h, n) =>
          el('th', { scope: 'col', 'aria-label': n === 0 ? 'Evidence' : null }, h)))),
        el('tbody', {}, rows));
      attacksBox.replaceChildren(el('div', { class: 'table-wrap' }, table));
    }

    // A detection's evidence: the figure observed against the threshold
    // and what was learned, and the identity's last requests.
    function evidence(ev) {
      if (!ev || typeof ev !== 'object') return el('p', { class: 'muted' }, 'No evidence recorded with this entry.');
      const f = ev.figure || '';
      const facts = [
        ['Detector', ev.detector ? ev.detector + (ev.mode ? ' (' + ev.mode + ')' : '') : '—'],
        ['Figure', f || '—'],
        ['Observed', figureValue(f, ev.observed)],
        ['Threshold', figureValue(f, ev.threshold) + (ev.override ? ' (override)' : '')],
        ['Learned', ev.learned ? figureValue(f, ev.learned) : '—'],
        ['Windows learned', fmt(ev.windows_learned || 0)],
        ['Window', ev.window || '—'],
      ];
      const dl = el('table', { class: 'abs-facts' }, el('tbody', {}, facts.map(([k, v]) =>
        el('tr', { 'data-fact': k.toLowerCase().replace(/ /g, '-') }, el('th', { scope: 'row' }, k), el('td', {}, v)))));
      dl.style.width = 'auto';
      const samples = ev.samples || [];
      const sTable = samples.length ? el('div', { class: 'table-wrap' }, el('table', { class: 'abs-samples' },
        el('caption', { class: 'muted' }, 'Its last requests'),
        el('thead', {}, el('tr', {}, ['Time', 'Method', 'Path', 'Status', 'Address'].map((h) => el('th', { scope: 'col' }, h)))),
        el('tbody', {}, samples.map((s) => {
          const p = el('td', {}, el('code', {}, s.path || ''));
          p.style.overflowWrap = 'anywhere';
          return el('tr', {}, el('td', {}, el('time', { datetime: s.time, title: s.time }, when(String(s.time || '').replace(/(\.\d{3})\d+/, '$1')))), el('td', {}, s.method || ''), p,
            el('td', {}, s.status ? String(s.status) : '—'), el('td', {}, s.ip || ''));
        })))) : el('p', { class: 'muted' }, 'No sample requests.');
      const cap = sTable.querySelector && sTable.querySelector('caption');
      if (cap) cap.style.textAlign = 'left';
      const box = el('div', { class: 'abs-evidence-body' }, dl,
        ev.note ? el('p', { class: 'abs-note' }, 'Note: ', ev.note) : null,
        sTable);
      Object.assign(box.style, { display: 'flex', flexWrap: 'wrap', gap: '1rem', alignItems: 'flex-start' });
      return box;
    }

    async function clearOne(it) {
      const d = describe(it.ident);
      if (!confirm('Clear ' + d + ' from the attack list? It is taken off the deny list and let in again, until it is found again.')) return;
      try {
        const r = await call('DELETE', '/v4/abs/attacklist', { [it.k.key]: [it.k.body(it.ident)] });
        toast((r && r.status_message) || d + ' cleared');
      } catch (e) {
        toast('Could not clear ' + d + ': ' + why(e));
      }
      if (!alive) return;
      await loadAttacks();
      if (alive && (!document.activeElement || document.activeElement === document.body)) attacksInfo.focus();
    }

    loadInfo();
    loadAttacks();
    return () => { alive = false; };
  }

  register('detection', 'Detection', 50, detectionPage);
})();

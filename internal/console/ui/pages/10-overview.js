// The overview: the last hour's traffic, by decision and reason, and the
// backends' health.
'use strict';
(() => {
  const { el, toast, fmt, writeButton, canWrite, call, APIError, chart, colours, register, route, main } = window.ASE;
  // ---- overview ----
  // The last hour, per step, by series (api, decision, reason), from
  // GET /v5/ase/activity; every 5 s only the steps that ended since.
  function overviewPage() {
    const view = { step: 5, to: null, series: new Map(), backends: [], top: [], detections: [], api: null };
    const body = el('div', {}, el('p', { class: 'muted' }, 'Loading the last hour…'));
    // The figures and charts are of every API, or of the one chosen here
    // (made once: a refresh keeps the choice and the keyboard's focus).
    const apiSelect = el('select', { id: 'overview-api', onchange: () => { view.api = apiSelect.value === '' ? null : apiSelect.value; render(); } },
      el('option', { value: '' }, 'All APIs'));
    main.replaceChildren(el('h1', {}, 'Overview'),
      el('form', { class: 'inline', onsubmit: (ev) => ev.preventDefault() }, el('label', { for: 'overview-api' }, 'Charts of'), apiSelect), body);
    function apiOptions() {
      const have = new Set([...apiSelect.options].map((o) => o.value));
      const apis = [...new Set([...view.series.values()].map((s) => s.api))].sort();
      for (const a of apis) if (!have.has(a)) apiSelect.append(el('option', { value: a }, a === '' ? '(no API)' : a));
    }
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
      apiOptions();
      const n = 3600 / view.step;
      const chosen = (s) => view.api === null || s.api === view.api;
      const sum = (pred) => {
        const out = new Array(n).fill(0);
        for (const s of view.series.values()) if (chosen(s) && pred(s)) s.values.forEach((v, i) => { out[i] += v; });
        return out;
      };
      const perSec = (a) => a.map((v) => v / view.step);
      const allowed = sum((s) => s.decision === 'allow');
      const blocked = sum((s) => s.decision !== 'allow');
      const lastMin = (a) => a.slice(-60 / view.step).reduce((x, y) => x + y, 0) / 60;
      const total = (a) => a.reduce((x, y) => x + y, 0);
      const reasons = new Map();
      for (const s of view.series.values()) {
        if (s.decision === 'allow' || !chosen(s)) continue;
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
      const of = view.api === null ? '' : ' — ' + (view.api === '' ? '(no API)' : view.api);
      const figures = el('div', { class: 'card figures' },
        el('div', { class: 'figure allow', id: 'allowed-rate' }, el('b', {}, fmt(lastMin(allowed))), 'allowed per second (last minute)'),
        el('div', { class: 'figure block', id: 'blocked-rate' }, el('b', {}, fmt(lastMin(blocked))), 'blocked per second (last minute)'),
        el('div', { class: 'figure allow', id: 'allowed-total' }, el('b', {}, fmt(total(allowed))), 'allowed in the last hour'),
        el('div', { class: 'figure block', id: 'blocked-total' }, el('b', {}, fmt(total(blocked))), 'blocked in the last hour'),
        el('div', { class: 'figure muted' }, el('b', {}, view.to ? new Date(view.to).toLocaleTimeString() : '—'), 'up to'));
      const charts = el('div', { class: 'grid' },
        chart('Requests per second' + of, [
          { name: 'allowed', colour: '#2f7d4f', values: perSec(allowed) },
          { name: 'blocked', colour: '#b3261e', values: perSec(blocked) },
        ], view.step, 'chart-requests'),
        chart('Blocked per second, by reason' + of, [...reasons.entries()].sort().map(([k, a], i) => ({ name: k, colour: colours[(i + 1) % colours.length], values: perSec(a) })), view.step, 'chart-reasons'));
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
      const top = el('section', { class: 'card' }, el('h2', {}, 'Clients refused most, last 10 minutes'),
        view.top.length === 0 ? el('p', { class: 'muted' }, 'No client was refused.') :
          el('div', { class: 'table-wrap' }, el('table', { id: 'top-blocked' },
            el('thead', {}, el('tr', {}, el('th', {}, 'client'), el('th', { class: 'num' }, 'refused'), el('th', {}, 'last API'), el('th', {}, 'last reason'), el('th', {}, 'last seen'))),
            el('tbody', {}, view.top.map((c) => el('tr', { 'data-ip': c.ip },
              el('td', {}, c.ip),
              el('td', { class: 'num', title: c.overcount ? 'may include up to ' + c.overcount + ' refusals of other clients' : null }, fmt(c.blocked) + (c.overcount ? ' ≤' : '')),
              el('td', {}, c.last_api_id || '(no API)'), el('td', {}, c.last_reason),
              el('td', {}, new Date(c.last_seen).toLocaleTimeString())))))));
      const detected = el('section', { class: 'card' }, el('h2', {}, 'Newly detected attackers'),
        view.detections.length === 0 ? el('p', { class: 'muted' }, 'No attacker detected since this node started.') :
          el('div', { class: 'table-wrap' }, el('table', { id: 'detections' },
            el('thead', {}, el('tr', {}, el('th', {}, 'when'), el('th', {}, 'identity'), el('th', {}, 'detection'), el('th', {}, 'why'), el('th', {}, 'listed until'))),
            el('tbody', {}, view.detections.map((d) => el('tr', {},
              el('td', {}, new Date(d.time).toLocaleTimeString()),
              el('td', {}, d.type + ' ' + (d.name ? d.name + ' ' : '') + d.value),
              el('td', {}, d.tag), el('td', {}, d.reason),
              el('td', {}, d.expires_at ? new Date(d.expires_at).toLocaleString() : 'removed by an operator')))))));
      body.replaceChildren(figures, charts, el('div', { class: 'grid' }, top, detected), apis, backends);
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
    view.top = rep.top_blocked_clients || [];
    view.detections = rep.recent_detections || [];
  }

  register('overview', 'Overview', 10, overviewPage);
})();

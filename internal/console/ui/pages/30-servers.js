// Servers: one API's backend servers with their health (GET
// /v5/ase/server, every 5 s), a server added (POST, the vendor's body) or
// removed (DELETE, after a confirmation).
'use strict';
(() => {
  const { el, toast, writeButton, canWrite, call, register, main } = window.ASE;
  const READ_ONLY = 'Your role (read) sees everything and changes nothing';

  const badge = (h) => el('span', { class: 'badge ' + (h === 'Up' ? 'up' : h === 'Down' ? 'down' : 'unknown') }, h || 'Unknown');
  const addr = (s) => (s.host.includes(':') ? '[' + s.host + ']' : s.host) + ':' + s.port;

  // apiPicker is a select of the APIs that goes to #/<page>/<api> when
  // changed; it calls done(first API, or '' when there is none).
  async function apiPicker(page, current, id, box) {
    const data = await call('GET', '/v5/ase/api');
    const apis = (data.api || []).map((a) => a.api_id).sort();
    if (apis.length === 0) return { apis, select: null };
    const sel = el('select', { id, onchange: () => { location.hash = '#/' + page + '/' + encodeURIComponent(sel.value); } },
      apis.map((a) => el('option', { value: a, selected: a === current }, a)));
    box.replaceChildren(el('label', { for: id }, 'API'), sel);
    return { apis, select: sel };
  }

  function serversPage(arg) {
    let alive = true;
    let timer = 0;
    const picker = el('div', { class: 'card' }, el('p', { class: 'muted' }, 'Loading…'));
    const body = el('div', {});
    main.replaceChildren(el('h1', {}, 'Servers and health'), picker, body);

    (async () => {
      let apis;
      try {
        ({ apis } = await apiPicker('servers', arg, 'servers-api', picker));
      } catch (e) {
        picker.replaceChildren(el('p', { class: 'error' }, 'Could not list the APIs: ' + e.message));
        return;
      }
      if (!alive) return;
      if (apis.length === 0) {
        picker.replaceChildren(el('p', { class: 'muted', id: 'servers-none' }, 'No APIs yet: create one on the APIs page first.'));
        return;
      }
      const api = apis.includes(arg) ? arg : apis[0];
      if (arg && api !== arg) picker.append(el('p', { class: 'error' }, 'No API ' + arg + ': showing ' + api + '.'));
      document.getElementById('servers-api').value = api;
      showAPI(api);
    })();

    function showAPI(api) {
      const q = '?api_id=' + encodeURIComponent(api);
      const tableBox = el('div', { id: 'servers-table' }, el('p', { class: 'muted' }, 'Loading…'));
      const note = el('p', { class: 'muted', 'aria-live': 'polite' });
      let shown = ''; // the servers the table shows, to update only their health when unchanged

      async function load() {
        clearTimeout(timer);
        try {
          const list = await call('GET', '/v5/ase/server' + q);
          if (!alive) return;
          render(list);
        } catch (e) {
          if (!alive) return;
          tableBox.replaceChildren(el('p', { class: 'error', id: 'servers-error' }, 'Could not read the servers: ' + e.message));
          shown = '';
        }
        if (alive) timer = setTimeout(load, 5000);
      }
      function render(list) {
        const servers = list.server || [];
        const key = servers.map((s) => addr(s) + ' ' + (s.server_spike_threshold || '') + ' ' + s.server_connection_quota).join('\n');
        note.textContent = servers.length + (servers.length === 1 ? ' server' : ' servers') + '; health refreshed every 5 seconds.';
        if (key === shown) {
          // The same servers: only their health changes, so focus and
          // the keyboard's place stay where they are.
          for (const s of servers) {
            const cell = tableBox.querySelector('tr[data-server="' + CSS.escape(addr(s)) + '"] td.health');
            if (cell && cell.textContent !== (s.health_status || 'Unknown')) cell.replaceChildren(badge(s.health_status));
            cell?.closest('tr').setAttribute('data-health', s.health_status || 'Unknown');
          }
          return;
        }
        shown = key;
        if (servers.length === 0) {
          tableBox.replaceChildren(el('p', { class: 'muted', id: 'servers-empty' }, 'This API has no backend servers.'));
          return;
        }
        // Three columns, the limits under the address: narrow enough for a
        // phone's width with the Remove button in sight.
        const limits = (s) => [s.server_spike_threshold !== undefined ? 'spike threshold ' + s.server_spike_threshold : null,
          'connection quota ' + (s.server_connection_quota ? String(s.server_connection_quota) : 'none')].filter(Boolean).join(' · ');
        tableBox.replaceChildren(el('div', { class: 'table-wrap' }, el('table', { id: 'server-list' },
          el('thead', {}, el('tr', {}, el('th', {}, 'Server and limits'), el('th', {}, 'Health'), el('th', {}, ''))),
          el('tbody', {}, servers.map((s) => el('tr', { 'data-server': addr(s), 'data-health': s.health_status || 'Unknown' },
            el('td', {}, el('code', {}, addr(s)), el('br'), el('small', { class: 'muted' }, limits(s))),
            el('td', { class: 'health' }, badge(s.health_status)),
            el('td', {}, writeButton('Remove', { class: 'danger', 'data-remove': addr(s), 'aria-label': 'Remove server ' + addr(s) }, () => remove(s)))))))));
      }
      async function remove(s) {
        if (!confirm('Remove server ' + addr(s) + ' from API ' + api + '?')) return;
        try {
          await call('DELETE', '/v5/ase/server' + q, { server: { host: s.host, port: s.port } });
          toast('Server ' + addr(s) + ' removed from ' + api);
        } catch (e) {
          toast('Could not remove ' + addr(s) + ': ' + e.message);
        }
        load();
      }

      // ---- adding a server ----
      const host = el('input', { id: 'server-host', required: true, autocomplete: 'off', spellcheck: 'false', placeholder: '10.0.0.5 or backend.example' });
      const port = el('input', { id: 'server-port', type: 'number', min: 1, max: 65535, required: true, inputmode: 'numeric' });
      const spike = el('input', { id: 'server-spike', autocomplete: 'off', spellcheck: 'false', placeholder: '0/second (off)' });
      const quota = el('input', { id: 'server-quota', type: 'number', min: 0, inputmode: 'numeric', placeholder: '0 (none)' });
      const out = el('p', { id: 'server-add-result', role: 'alert' });
      for (const f of [host, port, spike, quota]) f.style.maxWidth = '100%';
      const add = el('button', { type: 'submit', class: 'primary', id: 'server-add' }, 'Add server');
      const fields = el('fieldset', { disabled: !canWrite(), title: canWrite() ? null : READ_ONLY },
        el('div', {}, el('label', { for: 'server-host' }, 'Host'), host),
        el('div', {}, el('label', { for: 'server-port' }, 'Port'), port),
        el('div', {}, el('label', { for: 'server-spike' }, 'Spike threshold (http APIs)'), spike),
        el('div', {}, el('label', { for: 'server-quota' }, 'Connection quota'), quota),
        add);
      Object.assign(fields.style, { border: '0', margin: '0', padding: '0', minWidth: '0', display: 'flex', flexWrap: 'wrap', gap: '.5rem', alignItems: 'flex-end' });
      const form = el('form', { class: 'card', id: 'server-add-form', onsubmit: async (ev) => {
        ev.preventDefault();
        out.className = '';
        out.textContent = '';
        const server = { host: host.value.trim(), port: Number(port.value) };
        if (spike.value.trim() !== '') server.server_spike_threshold = spike.value.trim();
        if (quota.value !== '') server.server_connection_quota = Number(quota.value);
        try {
          await call('POST', '/v5/ase/server' + q, { server });
          out.className = 'ok';
          out.textContent = 'Server ' + addr(server) + ' added.';
          host.value = port.value = spike.value = quota.value = '';
          load();
        } catch (e) {
          out.className = 'error';
          out.textContent = e.message;
        }
      } }, el('h2', {}, 'Add a server'), fields, out);

      body.replaceChildren(el('section', { class: 'card' }, el('h2', {}, 'Backend servers of ', el('code', {}, api)), tableBox, note), form);
      load();
    }

    return () => {
      alive = false;
      clearTimeout(timer);
    };
  }

  register('servers', 'Servers', 30, serversPage);
})();

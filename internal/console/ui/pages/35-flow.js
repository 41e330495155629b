// Flow control: one API's limits (GET/POST /v5/ase/firewall/flowcontrol:
// the fields changed are sent, the others stay as they are) and each
// backend server's spike threshold and connection quota (POST
// /v5/ase/firewall/flowcontrol/server). The server's errors are shown at
// the form that caused them.
'use strict';
(() => {
  const { el, canWrite, call, register, main } = window.ASE;
  const READ_ONLY = 'Your role (read) sees everything and changes nothing';
  const addr = (s) => (s.host.includes(':') ? '[' + s.host + ']' : s.host) + ':' + s.port;
  const RATE_HINT = 'N/second, N/minute or N/hour; 0/second turns it off';

  // A fieldset laid out as an inline form, disabled for the read role.
  function controls(...kids) {
    const f = el('fieldset', { disabled: !canWrite(), title: canWrite() ? null : READ_ONLY }, ...kids);
    Object.assign(f.style, { border: '0', margin: '0', padding: '0', minWidth: '0', display: 'flex', flexWrap: 'wrap', gap: '.5rem', alignItems: 'flex-end' });
    return f;
  }
  function field(id, label, input) {
    input.id = id;
    input.style.maxWidth = '100%';
    return el('div', {}, el('label', { for: id }, label), input);
  }
  function result(out, cls, text) {
    out.className = cls;
    out.textContent = text;
  }

  function flowPage(arg) {
    let alive = true;
    const picker = el('div', { class: 'card' }, el('p', { class: 'muted' }, 'Loading…'));
    const body = el('div', {});
    main.replaceChildren(el('h1', {}, 'Flow control'), picker, body);

    (async () => {
      let apis;
      try {
        const data = await call('GET', '/v5/ase/api');
        apis = (data.api || []).map((a) => a.api_id).sort();
      } catch (e) {
        picker.replaceChildren(el('p', { class: 'error' }, 'Could not list the APIs: ' + e.message));
        return;
      }
      if (!alive) return;
      if (apis.length === 0) {
        picker.replaceChildren(el('p', { class: 'muted', id: 'flow-none' }, 'No APIs yet: create one on the APIs page first.'));
        return;
      }
      const api = apis.includes(arg) ? arg : apis[0];
      const sel = el('select', { id: 'flow-api', onchange: () => { location.hash = '#/flow/' + encodeURIComponent(sel.value); } },
        apis.map((a) => el('option', { value: a }, a)));
      sel.value = api;
      picker.replaceChildren(el('label', { for: 'flow-api' }, 'API'), sel);
      if (arg && api !== arg) picker.append(el('p', { class: 'error' }, 'No API ' + arg + ': showing ' + api + '.'));
      showAPI(api);
    })();

    async function showAPI(api) {
      const q = '?api_id=' + encodeURIComponent(api);
      body.replaceChildren(el('p', { class: 'muted' }, 'Loading…'));
      let info, servers;
      try {
        [info, servers] = await Promise.all([call('GET', '/v5/ase/firewall/flowcontrol' + q), call('GET', '/v5/ase/server' + q)]);
      } catch (e) {
        if (alive) body.replaceChildren(el('p', { class: 'error', id: 'flow-error' }, 'Could not read the flow control of ' + api + ': ' + e.message));
        return;
      }
      if (!alive) return;
      body.replaceChildren(apiForm(api, q, info.flow_control || {}), serverSection(api, q, servers.server || []));
    }

    // ---- the API's limits ----
    function apiForm(api, q, fc) {
      let cur = fc;
      const ws = fc.bytes_in_threshold !== undefined || fc.bytes_out_threshold !== undefined;
      const client = el('input', { autocomplete: 'off', spellcheck: 'false', placeholder: '0/second', title: RATE_HINT });
      const queueing = el('input', { type: 'checkbox' });
      const bytesIn = el('input', { autocomplete: 'off', spellcheck: 'false', title: RATE_HINT });
      const bytesOut = el('input', { autocomplete: 'off', spellcheck: 'false', title: RATE_HINT });
      const out = el('p', { id: 'flow-result', role: 'alert' });
      function fill(f) {
        cur = f;
        client.value = f.client_spike_threshold || '';
        queueing.checked = !!f.server_connection_queueing;
        bytesIn.value = f.bytes_in_threshold || '';
        bytesOut.value = f.bytes_out_threshold || '';
      }
      fill(fc);
      const queueLabel = el('div', {}, el('label', { for: 'flow-queueing' }, queueing, ' Queue requests when every server is at its limits'));
      queueing.id = 'flow-queueing';
      queueLabel.firstChild.style.fontWeight = 'normal';
      const form = el('form', { class: 'card', id: 'flow-form', onsubmit: async (ev) => {
        ev.preventDefault();
        result(out, '', '');
        // Only what was changed here: what another operator changed
        // meanwhile in the other fields stays.
        const patch = {};
        if (client.value.trim() !== (cur.client_spike_threshold || '')) patch.client_spike_threshold = client.value.trim();
        if (queueing.checked !== !!cur.server_connection_queueing) patch.server_connection_queueing = queueing.checked;
        if (ws && bytesIn.value.trim() !== (cur.bytes_in_threshold || '')) patch.bytes_in_threshold = bytesIn.value.trim();
        if (ws && bytesOut.value.trim() !== (cur.bytes_out_threshold || '')) patch.bytes_out_threshold = bytesOut.value.trim();
        if (Object.keys(patch).length === 0) {
          result(out, 'muted', 'Nothing changed.');
          return;
        }
        try {
          const rep = await call('POST', '/v5/ase/firewall/flowcontrol' + q, { flow_control: patch });
          fill(rep.flow_control || {});
          result(out, 'ok', 'Saved: ' + Object.keys(patch).join(', ') + '.');
        } catch (e) {
          result(out, 'error', e.message);
        }
      } },
      el('h2', {}, 'Limits of ', el('code', {}, api)),
      el('p', { class: 'muted' }, 'Per client of this API; over it a client gets 429 with Retry-After. Limits change at once, for requests in flight too.'),
      controls(
        field('flow-client', 'Client spike threshold', client),
        ws ? field('flow-bytes-in', 'Bytes in threshold (per connection)', bytesIn) : null,
        ws ? field('flow-bytes-out', 'Bytes out threshold (per connection)', bytesOut) : null,
        queueLabel,
        el('button', { type: 'submit', class: 'primary', id: 'flow-save' }, 'Save')),
      out);
      return form;
    }

    // ---- each server's limits ----
    // One small form a server (not a table): it wraps at a phone's width.
    function serverSection(api, q, servers) {
      const box = el('section', { class: 'card', id: 'flow-servers' }, el('h2', {}, 'Server limits'));
      if (servers.length === 0) {
        box.append(el('p', { class: 'muted' }, 'This API has no backend servers: add them on the Servers page.'));
        return box;
      }
      const rest = servers.some((s) => s.server_spike_threshold !== undefined);
      box.append(el('p', { class: 'muted' }, 'A request goes to a healthy server under both limits' + (rest ? ' (0/second: no spike threshold; 0: no quota)' : ' (0: no quota)') + '. Only the limits changed are sent.'),
        el('div', { id: 'flow-server-list' }, servers.map((s) => serverForm(q, s, rest))));
      return box;
    }
    function serverForm(q, s, rest) {
      let cur = { spike: s.server_spike_threshold || '', quota: String(s.server_connection_quota ?? 0) };
      const a = addr(s);
      const key = a.replace(/[^A-Za-z0-9]/g, '-');
      const spike = el('input', { 'data-spike': a, autocomplete: 'off', spellcheck: 'false', title: RATE_HINT, size: 12 });
      const quota = el('input', { 'data-quota': a, type: 'number', min: 0, inputmode: 'numeric' });
      spike.value = cur.spike;
      quota.value = cur.quota;
      quota.style.width = '7rem';
      const out = el('p', { role: 'alert', 'data-result': a });
      const save = el('button', { type: 'submit', 'data-save': a, 'aria-label': 'Save the limits of ' + a }, 'Save');
      const form = el('form', { 'data-server': a, onsubmit: async (ev) => {
        ev.preventDefault();
        result(out, '', '');
        const server = { host: s.host, port: s.port };
        if (rest && spike.value.trim() !== cur.spike) server.server_spike_threshold = spike.value.trim();
        if (quota.value !== cur.quota) server.server_connection_quota = quota.value === '' ? '' : Number(quota.value);
        if (Object.keys(server).length === 2) {
          result(out, 'muted', 'Nothing changed.');
          return;
        }
        try {
          await call('POST', '/v5/ase/firewall/flowcontrol/server' + q, { server });
          cur = { spike: rest ? spike.value.trim() : '', quota: quota.value };
          result(out, 'ok', 'Saved the limits of ' + a + '.');
        } catch (e) {
          result(out, 'error', e.message);
        }
      } },
      el('h3', {}, el('code', {}, a)),
      controls(
        rest ? field('flow-spike-' + key, 'Spike threshold', spike) : null,
        field('flow-quota-' + key, 'Connection quota', quota),
        save),
      out);
      form.style.borderTop = '1px solid var(--line)';
      form.firstChild.style.fontSize = '1rem';
      form.firstChild.style.margin = '.6rem 0 0';
      return form;
    }

    return () => { alive = false; };
  }

  register('flow', 'Flow control', 35, flowPage);
})();

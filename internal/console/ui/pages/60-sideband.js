// Sideband: the authentication switch, sideband tokens and shared secrets
// (listed, created, deleted; secrets activated and deactivated) and the
// header that carries shared secrets. A created token or secret is shown
// once, from a local variable of the page: never stored, never in the
// address, gone when the page is left or reloaded.
'use strict';
(() => {
  const { el, toast, writeButton, canWrite, call, register, main, onceBox, when } = window.ASE;
  const SB = '/v5/ase/sideband';
  const readOnly = 'Your role (read) sees everything and changes nothing';

  // randomSecret is 32 characters of base64url from the browser's
  // cryptographic source (192 bits).
  function randomSecret() {
    const b = new Uint8Array(24);
    crypto.getRandomValues(b);
    let s = '';
    for (const x of b) s += String.fromCharCode(x);
    return btoa(s).replace(/\+/g, '-').replace(/\//g, '_');
  }

  function disableForRead(b) {
    if (!canWrite()) {
      b.disabled = true;
      b.title = readOnly;
    }
    return b;
  }

  function sidebandPage() {
    let alive = true;
    const once = el('div', { id: 'once-box' });
    const auth = el('section', { class: 'card', id: 'sb-auth' }, el('h2', {}, 'Authentication'), el('p', { class: 'muted' }, 'Loading…'));
    const tokens = el('section', { class: 'card', id: 'sb-tokens' }, el('h2', {}, 'Sideband tokens'), el('p', { class: 'muted' }, 'Loading…'));
    const secrets = el('section', { class: 'card', id: 'sb-secrets' }, el('h2', {}, 'Shared secrets'), el('p', { class: 'muted' }, 'Loading…'));
    main.replaceChildren(el('h1', {}, 'Sideband'),
      el('p', { class: 'muted', id: 'sb-mode' }),
      once, auth, tokens, secrets);

    // The mode, for context: these settings matter with mode=sideband.
    call('GET', '/v5/ase/status').then((s) => {
      if (alive && s && s.mode && s.mode !== 'sideband') {
        document.getElementById('sb-mode').textContent = 'This node runs in ' + s.mode + ' mode: tokens and shared secrets apply to gateways calling it with mode=sideband.';
      }
    }).catch(() => {});

    // ---- the authentication switch ----
    async function loadAuth() {
      try {
        const r = await call('GET', SB + '/authentication');
        if (!alive) return;
        const on = r.status === 'enabled';
        const out = el('p', { id: 'sb-auth-result', role: 'alert' });
        auth.replaceChildren(el('h2', {}, 'Authentication'),
          el('p', { id: 'sb-auth-status' }, 'Sideband authentication is ', el('b', { class: on ? 'ok' : 'error' }, on ? 'enabled' : 'disabled'),
            on ? ': gateways must send a sideband token (ASE-Token) or an active shared secret.' : ': any gateway that reaches the sideband port is answered.'),
          el('div', { class: 'actions' },
            writeButton(on ? 'Disable authentication' : 'Enable authentication', { id: 'sb-auth-toggle', class: on ? 'danger' : 'primary' }, async () => {
              if (on && !confirm('Disable sideband authentication? Any gateway that reaches the sideband port will be answered.')) return;
              try {
                await call('POST', SB + '/authentication?status=' + (on ? 'disable' : 'enable'));
                toast('Sideband authentication ' + (on ? 'disabled' : 'enabled'));
                loadAuth();
              } catch (e) {
                out.className = 'error';
                out.textContent = e.message;
              }
            })),
          out);
      } catch (e) {
        if (alive) auth.replaceChildren(el('h2', {}, 'Authentication'), el('p', { class: 'error' }, e.message));
      }
    }

    // ---- tokens ----
    // The API lists tokens whole (the vendor's shape); the page shows only
    // their first characters, and a new one whole once.
    async function loadTokens() {
      const out = el('p', { id: 'token-result', role: 'alert' });
      const create = writeButton('Create a token', { id: 'new-token', class: 'primary' }, async () => {
        out.className = '';
        out.textContent = '';
        try {
          const r = await call('POST', SB + '/token');
          onceBox(once, 'New sideband token', r.token, 'Gateways send it in the ASE-Token header.');
          loadTokens();
        } catch (e) {
          out.className = 'error';
          out.textContent = e.message;
        }
      });
      let list;
      try {
        list = (await call('GET', SB + '/token')).sideband_tokens || [];
      } catch (e) {
        if (alive) tokens.replaceChildren(el('h2', {}, 'Sideband tokens'), el('p', { class: 'error' }, e.message));
        return;
      }
      if (!alive) return;
      const rows = list.map((t) => {
        const shown = t.token.slice(0, 6) + '…';
        return el('tr', { 'data-token': t.token.slice(0, 6) },
          el('td', {}, el('code', {}, shown)),
          el('td', {}, t.created_at),
          el('td', {}, writeButton('Delete', { class: 'danger', 'aria-label': 'Delete token ' + shown }, async () => {
            if (!confirm('Delete sideband token ' + shown + '? Gateways using it will be refused.')) return;
            try {
              await call('DELETE', SB + '/token', { token: t.token });
              toast('Token ' + shown + ' deleted');
              loadTokens();
            } catch (e) {
              out.className = 'error';
              out.textContent = e.message;
            }
          })));
      });
      tokens.replaceChildren(el('h2', {}, 'Sideband tokens'),
        list.length === 0 ? el('p', { class: 'muted', id: 'token-none' }, 'No sideband tokens.') :
          el('div', { class: 'table-wrap' }, el('table', { id: 'token-list' },
            el('thead', {}, el('tr', {}, el('th', {}, 'Token (first characters)'), el('th', {}, 'Created'), el('th', {}, ''))),
            el('tbody', {}, rows))),
        el('p', { class: 'muted' }, 'A token is 32 characters from the operating system\'s cryptographic source, shown whole once when it is created.'),
        el('div', { class: 'actions' }, create), out);
    }

    // ---- shared secrets and their header ----
    async function loadSecrets() {
      let list, header;
      try {
        [list, header] = await Promise.all([call('GET', SB + '/secret'), call('GET', SB + '/secret/header')]);
      } catch (e) {
        if (alive) secrets.replaceChildren(el('h2', {}, 'Shared secrets'), el('p', { class: 'error' }, e.message));
        return;
      }
      if (!alive) return;
      list = list.shared_secrets || [];
      const out = el('p', { id: 'secret-result', role: 'alert' });
      const fail = (e) => {
        out.className = 'error';
        out.textContent = e.message;
      };
      const rows = list.map((s) => {
        const del = writeButton('Delete', { class: 'danger', 'data-delete-secret': s.name, 'aria-label': 'Delete shared secret ' + s.name }, async () => {
          if (!confirm('Delete shared secret ' + s.name + '?')) return;
          try {
            await call('DELETE', SB + '/secret', { name: s.name });
            toast('Shared secret ' + s.name + ' deleted');
            loadSecrets();
          } catch (e) { fail(e); }
        });
        if (s.active && canWrite()) {
          del.disabled = true;
          del.title = 'An active secret cannot be deleted: deactivate it first';
        }
        return el('tr', { 'data-secret': s.name },
          el('td', {}, s.name),
          el('td', {}, el('span', { class: 'badge ' + (s.active ? 'up' : 'unknown') }, s.active ? 'active' : 'inactive')),
          el('td', {}, when(s.created_at)),
          el('td', {}, el('div', { class: 'actions' },
            writeButton(s.active ? 'Deactivate' : 'Activate', { 'data-toggle-secret': s.name, 'aria-label': (s.active ? 'Deactivate' : 'Activate') + ' shared secret ' + s.name }, async () => {
              if (s.active && !confirm('Deactivate shared secret ' + s.name + '? Gateways using it will be refused.')) return;
              try {
                await call('PUT', SB + '/secret', { name: s.name, active: !s.active });
                toast('Shared secret ' + s.name + ' is now ' + (s.active ? 'inactive' : 'active'));
                loadSecrets();
              } catch (e) { fail(e); }
            }), del)));
      });

      const name = el('input', { id: 'new-secret-name', required: true, maxlength: 64, autocomplete: 'off' });
      const value = el('input', { id: 'new-secret-value', type: 'password', minlength: 8, autocomplete: 'new-password', placeholder: 'generated' });
      const create = disableForRead(el('button', { type: 'submit', class: 'primary', id: 'new-secret-create' }, 'Create'));
      if (!canWrite()) name.readOnly = value.readOnly = true;
      const createForm = el('form', { class: 'inline', id: 'new-secret', onsubmit: async (ev) => {
        ev.preventDefault();
        out.className = '';
        out.textContent = '';
        const secret = value.value || randomSecret();
        try {
          await call('POST', SB + '/secret', { name: name.value, secret });
          onceBox(once, 'New shared secret ' + name.value, secret, 'Activate it, then give it to the gateways, which send it in the ' + header.header + ' header.');
          name.value = '';
          value.value = '';
          loadSecrets();
        } catch (e) { fail(e); }
      } },
      el('div', {}, el('label', { for: 'new-secret-name' }, 'Name'), name),
      el('div', {}, el('label', { for: 'new-secret-value' }, 'Secret (8+ characters; empty: one is generated)'), value),
      create);

      const hd = el('input', { id: 'secret-header', required: true, autocomplete: 'off', value: header.header });
      const hdSave = disableForRead(el('button', { type: 'submit', id: 'secret-header-save' }, 'Change'));
      if (!canWrite()) hd.readOnly = true;
      const headerForm = el('form', { class: 'inline', id: 'secret-header-form', onsubmit: async (ev) => {
        ev.preventDefault();
        out.className = '';
        out.textContent = '';
        try {
          await call('PUT', SB + '/secret/header', { header: hd.value });
          toast('The shared-secret header changed');
          loadSecrets();
        } catch (e) { fail(e); }
      } },
      el('div', {}, el('label', { for: 'secret-header' }, 'Header carrying the secret'), hd),
      hdSave,
      writeButton('Reset to CLIENT-TOKEN', { id: 'secret-header-reset' }, async () => {
        try {
          await call('DELETE', SB + '/secret/header');
          toast('The shared-secret header is CLIENT-TOKEN again');
          loadSecrets();
        } catch (e) { fail(e); }
      }));

      headerForm.style.marginBottom = '1rem';
      secrets.replaceChildren(el('h2', {}, 'Shared secrets'),
        el('p', { id: 'secret-header-now' }, 'Gateways send an active secret in the ', el('code', {}, header.header), ' header. Several may be active at once, for rotation.'),
        headerForm,
        list.length === 0 ? el('p', { class: 'muted', id: 'secret-none' }, 'No shared secrets.') :
          el('div', { class: 'table-wrap' }, el('table', { id: 'secret-list' },
            el('thead', {}, el('tr', {}, el('th', {}, 'Name'), el('th', {}, 'Status'), el('th', {}, 'Created'), el('th', {}, ''))),
            el('tbody', {}, rows))),
        el('p', { class: 'muted' }, 'Secrets are stored only as hashes and never listed. A new one is inactive until activated; an active one cannot be deleted.'),
        el('h2', {}, 'Create a shared secret'),
        createForm, out);
    }

    loadAuth();
    loadTokens();
    loadSecrets();
    return () => {
      alive = false;
      once.replaceChildren();
    };
  }

  register('sideband', 'Sideband', 60, sidebandPage);
})();

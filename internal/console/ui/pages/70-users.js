// Users and API keys: for admins, the local users (created, their role or
// password changed, deleted); everyone's own API keys (admins: everyone's),
// created and deleted. A new key's token is shown once, from a local
// variable of the page: never stored, never in the address, gone when the
// page is left or reloaded.
'use strict';
(() => {
  const { el, toast, writeButton, canWrite, call, APIError, register, state, main, onceBox, when } = window.ASE;
  const USERS = '/api/configuration/aaa/local_database/users';
  const KEYS = '/api/configuration/aaa/local_database/api_keys';
  const ROLES = ['read', 'write', 'admin'];
  const readOnly = 'Your role (read) sees everything and changes nothing';
  const isAdmin = () => state.role === 'admin';


  function submitButton(label, id, cls) {
    const b = el('button', { type: 'submit', id, class: cls || null }, label);
    if (!canWrite()) {
      b.disabled = true;
      b.title = readOnly;
    }
    return b;
  }
  function roleSelect(id, first) {
    return el('select', { id }, first ? el('option', { value: '' }, first) : null, ROLES.map((r) => el('option', { value: r }, r)));
  }

  function usersPage() {
    let alive = true;
    let users = null; // the users, for admins
    const once = el('div', { id: 'once-box' });
    const usersCard = el('section', { class: 'card', id: 'users' }, el('h2', {}, 'Users'), el('p', { class: 'muted' }, 'Loading…'));
    const keysCard = el('section', { class: 'card', id: 'api-keys' }, el('h2', {}, 'API keys'), el('p', { class: 'muted' }, 'Loading…'));
    main.replaceChildren(el('h1', {}, 'Users and API keys'), once, usersCard, keysCard);

    // ---- users (admin role) ----
    function needsAdmin() {
      usersCard.replaceChildren(el('h2', {}, 'Users'),
        el('p', { class: 'muted', id: 'users-need-admin' }, 'Managing users needs the admin role; you are signed in as ' + (state.user || 'a user') + (state.role ? ' (' + state.role + ')' : '') + '.'));
    }
    async function loadUsers() {
      if (state.role && !isAdmin()) {
        needsAdmin();
        return;
      }
      try {
        users = ((await call('GET', USERS)).items || []).map((u) => u.body).sort((a, b) => a.name.localeCompare(b.name));
      } catch (e) {
        if (!alive) return;
        if (e instanceof APIError && e.status === 403) needsAdmin();
        else usersCard.replaceChildren(el('h2', {}, 'Users'), el('p', { class: 'error' }, e.message));
        return;
      }
      if (!alive) return;
      const out = el('p', { id: 'user-result', role: 'alert' });
      const fail = (e) => {
        out.className = 'error';
        out.textContent = e.message;
      };
      const rows = users.map((u) => {
        const del = writeButton('Delete', { class: 'danger', 'data-delete-user': u.name, 'aria-label': 'Delete user ' + u.name }, async () => {
          if (!confirm('Delete user ' + u.name + '? Their sessions and API keys stop working.')) return;
          try {
            await call('DELETE', USERS + '/' + encodeURIComponent(u.name));
            toast('User ' + u.name + ' deleted');
            loadUsers().then(loadKeys);
          } catch (e) { fail(e); }
        });
        if (u.name === 'admin' && canWrite()) {
          del.disabled = true;
          del.title = 'The built-in admin cannot be deleted';
        }
        return el('tr', { 'data-user': u.name },
          el('td', {}, u.name), el('td', { class: 'role' }, u.role), el('td', {}, when(u.created_at)), el('td', {}, del));
      });

      // Create.
      const name = el('input', { id: 'new-user-name', required: true, maxlength: 64, autocomplete: 'off' });
      const pass = el('input', { id: 'new-user-password', type: 'password', required: true, minlength: 8, autocomplete: 'new-password' });
      const role = roleSelect('new-user-role');
      const createForm = el('form', { class: 'inline', id: 'new-user', onsubmit: async (ev) => {
        ev.preventDefault();
        out.className = '';
        out.textContent = '';
        try {
          await call('POST', USERS, { name: name.value, password: pass.value, role: role.value });
          toast('User ' + name.value + ' created');
          loadUsers().then(loadKeys);
        } catch (e) { fail(e); }
      } },
      el('div', {}, el('label', { for: 'new-user-name' }, 'Name'), name),
      el('div', {}, el('label', { for: 'new-user-password' }, 'Password (8 characters or more)'), pass),
      el('div', {}, el('label', { for: 'new-user-role' }, 'Role'), role),
      submitButton('Create', 'new-user-create', 'primary'));

      // Change a role or a password.
      const who = el('select', { id: 'edit-user', required: true }, users.map((u) => el('option', { value: u.name }, u.name)));
      const newRole = roleSelect('edit-user-role', '(unchanged)');
      const newPass = el('input', { id: 'edit-user-password', type: 'password', minlength: 8, autocomplete: 'new-password', placeholder: 'unchanged' });
      const editForm = el('form', { class: 'inline', id: 'edit-user-form', onsubmit: async (ev) => {
        ev.preventDefault();
        out.className = '';
        out.textContent = '';
        const body = {};
        if (newRole.value) body.role = newRole.value;
        if (newPass.value) body.password = newPass.value;
        if (!body.role && !body.password) {
          fail(new Error('Choose a new role or type a new password.'));
          return;
        }
        try {
          await call('PUT', USERS + '/' + encodeURIComponent(who.value), body);
          toast('User ' + who.value + ' changed' + (body.password ? ': their sessions have ended' : ''));
          loadUsers().then(loadKeys);
        } catch (e) { fail(e); }
      } },
      el('div', {}, el('label', { for: 'edit-user' }, 'User'), who),
      el('div', {}, el('label', { for: 'edit-user-role' }, 'New role'), newRole),
      el('div', {}, el('label', { for: 'edit-user-password' }, 'New password'), newPass),
      submitButton('Save', 'edit-user-save'));

      usersCard.replaceChildren(el('h2', {}, 'Users'),
        el('div', { class: 'table-wrap' }, el('table', { id: 'user-list' },
          el('thead', {}, el('tr', {}, el('th', {}, 'Name'), el('th', {}, 'Role'), el('th', {}, 'Created'), el('th', {}, ''))),
          el('tbody', {}, rows))),
        el('p', { class: 'muted' }, 'read: reads everything, changes nothing; write: changes the configuration, not users; admin: everything. The built-in admin cannot be deleted or demoted.'),
        el('h2', {}, 'Create a user'), createForm,
        el('h2', {}, 'Change a role or a password'), editForm,
        out);
    }

    // ---- API keys (every role: one's own; admins: everyone's) ----
    async function loadKeys() {
      let keys;
      try {
        keys = ((await call('GET', KEYS)).items || []).map((k) => Object.assign({ id: k.key }, k.body));
      } catch (e) {
        if (alive) keysCard.replaceChildren(el('h2', {}, 'API keys'), el('p', { class: 'error' }, e.message));
        return;
      }
      if (!alive) return;
      keys.sort((a, b) => (a.username + '\0' + a.name).localeCompare(b.username + '\0' + b.name));
      const out = el('p', { id: 'key-result', role: 'alert' });
      const fail = (e) => {
        out.className = 'error';
        out.textContent = e.message;
      };
      // A user's own keys are theirs to manage whatever their role (the API
      // lets every role create and delete its own); another's, an admin's.
      const rows = keys.map((k) => el('tr', { 'data-key': k.id, 'data-key-name': k.name },
        el('td', {}, k.name), el('td', {}, k.username), el('td', {}, when(k.created_at)),
        el('td', {}, el('button', { type: 'button', class: 'danger', 'data-delete-key': k.id, 'aria-label': 'Delete API key ' + k.name + ' of ' + k.username, onclick: async () => {
          if (!confirm('Delete API key ' + k.name + ' of ' + k.username + '? Whatever uses it will be refused.')) return;
          try {
            await call('DELETE', KEYS + '/' + encodeURIComponent(k.id));
            toast('API key ' + k.name + ' deleted');
            loadKeys();
          } catch (e) { fail(e); }
        } }, 'Delete'))));

      const name = el('input', { id: 'new-key-name', required: true, maxlength: 128, autocomplete: 'off', placeholder: 'e.g. metrics scraper' });
      const fields = [el('div', {}, el('label', { for: 'new-key-name' }, 'Key name'), name)];
      const self = state.user && state.user !== 'admin';
      let forUser = null;
      if (isAdmin() && users) {
        const others = users.filter((u) => u.name !== 'admin' && u.name !== state.user);
        forUser = el('select', { id: 'new-key-user' },
          self ? el('option', { value: '' }, 'myself (' + state.user + ')') : null,
          others.map((u) => el('option', { value: u.name }, u.name + ' (' + u.role + ')')));
        fields.push(el('div', {}, el('label', { for: 'new-key-user' }, 'For'), forUser));
      }
      const create = el('button', { type: 'submit', class: 'primary', id: 'new-key-create' }, 'Create');
      const possible = self || (forUser && forUser.options.length > 0);
      if (!possible) {
        create.disabled = true;
        create.title = 'The built-in admin cannot have API keys: sign in as a local user, or create a user first';
      }
      const createForm = el('form', { class: 'inline', id: 'new-key', onsubmit: async (ev) => {
        ev.preventDefault();
        out.className = '';
        out.textContent = '';
        const user = forUser ? forUser.value : '';
        try {
          const r = await call('POST', user ? USERS + '/' + encodeURIComponent(user) + '/api_keys' : KEYS, { name: name.value });
          const body = r.body || {};
          onceBox(once, 'New API key ' + body.name + ' (' + body.username + ')', body.token,
            'Send it as "Authorization: apikey <token>": it reads with ' + body.username + '\'s role and changes nothing.');
          name.value = '';
          loadKeys();
        } catch (e) { fail(e); }
      } }, fields, create);

      keysCard.replaceChildren(el('h2', {}, 'API keys'),
        keys.length === 0 ? el('p', { class: 'muted', id: 'key-none' }, isAdmin() ? 'No API keys.' : 'You have no API keys.') :
          el('div', { class: 'table-wrap' }, el('table', { id: 'key-list' },
            el('thead', {}, el('tr', {}, el('th', {}, 'Name'), el('th', {}, 'User'), el('th', {}, 'Created'), el('th', {}, ''))),
            el('tbody', {}, rows))),
        el('p', { class: 'muted' }, 'An API key reads with its user\'s role and is refused every change. Its token is shown once, when it is created; the list never shows it.' +
          (state.user === 'admin' ? ' The built-in admin has no API keys of its own.' : '')),
        el('h2', {}, 'Create an API key'), createForm, out);
    }

    loadUsers().then(loadKeys);
    return () => {
      alive = false;
      once.replaceChildren();
    };
  }

  register('users', 'Users', 70, usersPage);
})();

// APIs: the list, one definition (edited and saved whole), creation from a
// pasted or uploaded vendor definition, deletion.
'use strict';
(() => {
  const { el, toast, fmt, writeButton, canWrite, call, APIError, chart, colours, register, route, main } = window.ASE;
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

  register('apis', 'APIs', 20, apisPage);
})();

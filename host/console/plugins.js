// Plugins: every stored plugin with its digest, size and limits, and the
// upload of a .wasm component.

import { api } from './api.js';
import { h, fill, field, table, bytes, messages, busy, paged } from './dom.js';

export async function pluginsPage(root) {
  const notes = messages();
  const list = h('div', null, h('p', null, 'Loading plugins…'));
  fill(root, h('h1', null, 'Plugins'), notes.el, list, h('h2', null, 'Upload a plugin'), uploadForm(notes, () => load()));
  const load = async () => {
    try {
      const { data } = await api('GET', '/v1/plugins');
      fill(list, data.length === 0 ? h('p', { class: 'muted' }, 'No plugins yet.')
        : paged(data, 25, (slice) => table('Plugins', ['Name', 'Source', 'sha256', 'Size', 'Timeout', 'Memory'],
          slice.map((p) => [p.name, p.source, h('code', { class: 'digest' }, p.sha256), bytes(p.size),
            `${p.timeout_ms} ms`, bytes(p.memory_bytes)]))));
    } catch (err) {
      list.replaceChildren();
      notes.show(err);
    }
  };
  await load();
}

function uploadForm(notes, reload) {
  const name = h('input', { type: 'text', name: 'name', required: true, pattern: '[a-z0-9][a-z0-9_\\-]{0,63}',
    spellcheck: 'false', autocapitalize: 'off' });
  const file = h('input', { type: 'file', name: 'wasm', accept: '.wasm,application/wasm', required: true });
  const timeout = h('input', { type: 'text', name: 'timeout', placeholder: '100ms', spellcheck: 'false' });
  const memory = h('input', { type: 'text', name: 'memory', placeholder: '32MiB', spellcheck: 'false' });
  const submit = h('button', { type: 'submit' }, 'Upload');
  const form = h('form', { class: 'card' },
    field('Name', name, 'Lower case letters, digits, - and _.'),
    field('Component (.wasm)', file),
    field('Timeout per call', timeout, 'Optional, e.g. 250ms.'),
    field('Memory cap', memory, 'Optional, e.g. 64MiB.'),
    submit);
  file.addEventListener('change', () => {
    // Suggest a name from the file: slack_threshold.wasm -> slack-threshold.
    if (!name.value && file.files[0]) {
      name.value = file.files[0].name.replace(/\.wasm$/, '').toLowerCase().replace(/_/g, '-');
    }
  });
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    busy(submit, async () => {
      const query = new URLSearchParams();
      if (timeout.value.trim()) query.set('timeout', timeout.value.trim());
      if (memory.value.trim()) query.set('memory', memory.value.trim());
      const path = `/v1/plugins/${encodeURIComponent(name.value.trim())}${query.size ? `?${query}` : ''}`;
      try {
        const info = await api('PUT', path, { body: await file.files[0].arrayBuffer(), contentType: 'application/wasm' });
        notes.ok(`Uploaded ${info.name}: sha256 ${info.sha256}, ${bytes(info.size)}.`);
        form.reset();
        await reload();
      } catch (err) {
        notes.show(err);
      }
    });
  });
  return form;
}

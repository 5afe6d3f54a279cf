// Ferry's page for people: log in, upload with Uppy (Dashboard + Tus over /files/),
// list, download and delete your files. The token stays in this tab's sessionStorage and
// travels only in Authorization headers; downloads use a short-lived signed link.
'use strict';
(() => {
  const TOKEN = 'ferry.token';
  const USER = 'ferry.user';
  const $ = (selector) => document.querySelector(selector);
  let uppy = null;

  const token = () => sessionStorage.getItem(TOKEN);

  async function api(method, path, body) {
    const headers = { Authorization: `Bearer ${token()}` };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    if (res.status === 401) {
      logout();
      throw new Error('Your session has ended; log in again.');
    }
    const data = res.status === 204 ? null : await res.json().catch(() => null);
    if (!res.ok) throw new Error((data && data.detail) || `${method} ${path}: ${res.status}`);
    return data;
  }

  function size(bytes) {
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    let n = bytes;
    while (n >= 1024 && i < units.length - 1) {
      n /= 1024;
      i += 1;
    }
    return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
  }

  function button(label, onClick) {
    const b = document.createElement('button');
    b.type = 'button';
    b.textContent = label;
    b.addEventListener('click', onClick);
    return b;
  }

  function row(file, isVersion) {
    const tr = document.createElement('tr');
    tr.dataset.id = file.id;
    if (isVersion) tr.className = 'version';
    const cells = [file.filename, size(file.size), `v${file.version || 1}`, new Date(file.created_at).toLocaleString()];
    for (const text of cells) {
      const td = document.createElement('td');
      td.textContent = text;
      tr.appendChild(td);
    }
    const actions = document.createElement('td');
    actions.append(
      button('Download', () => download(file)),
      button('Delete', () => remove(file)),
    );
    tr.appendChild(actions);
    return tr;
  }

  async function refresh() {
    const body = $('#files tbody');
    $('#files-error').textContent = '';
    try {
      const rows = [];
      let next = '/storage/files/';
      // Every page (bounded: 100 pages).
      for (let pages = 0; next && pages < 100; pages += 1) {
        const page = await api('GET', new URL(next, location.href).pathname + new URL(next, location.href).search);
        for (const file of page.results) {
          rows.push(row(file, false));
          const versions = file.versions || [];
          const older = (file.versions_count || 0) - versions.length;
          if (older > 0) {
            // A listing carries the newest 100 versions; the rest are a page away.
            const tr = document.createElement('tr');
            tr.className = 'version';
            const td = document.createElement('td');
            td.colSpan = 5;
            td.textContent = `… ${older} older version(s) not shown`;
            tr.appendChild(td);
            rows.push(tr);
          }
          for (const version of versions) rows.push(row(version, true));
        }
        next = page.next;
      }
      if (rows.length === 0) {
        const empty = document.createElement('tr');
        const td = document.createElement('td');
        td.colSpan = 5;
        td.textContent = 'No files yet: drop one above.';
        empty.appendChild(td);
        rows.push(empty);
      }
      body.replaceChildren(...rows);
    } catch (e) {
      $('#files-error').textContent = e.message;
    }
  }

  async function download(file) {
    try {
      // A signed node URL valid for seconds: no token in a URL that outlives its use.
      const link = await api('POST', `/storage/files/${file.id}/link`);
      location.assign(link.url);
    } catch (e) {
      $('#files-error').textContent = e.message;
    }
  }

  async function remove(file) {
    if (!confirm(`Delete ${file.filename}${file.versions && file.versions.length ? ' and its versions' : ''}?`)) return;
    try {
      await api('DELETE', `/storage/files/${file.id}/`);
      await refresh();
    } catch (e) {
      $('#files-error').textContent = e.message;
    }
  }

  function startUppy() {
    const { Uppy, Dashboard, Tus, GoldenRetriever } = window.Uppy;
    uppy = new Uppy({ autoProceed: false })
      .use(Dashboard, {
        inline: true,
        target: '#uploader',
        height: 360,
        showProgressDetails: true,
        proudlyDisplayPoweredByUppy: false,
      })
      .use(Tus, {
        endpoint: '/files/',
        // A PATCH may carry at most storage.max_chunk_bytes; 8 MiB keeps progress and
        // pause points fine-grained.
        chunkSize: 8 * 1024 * 1024,
        retryDelays: [0, 1000, 3000, 5000],
        headers: () => ({ Authorization: `Bearer ${token()}` }),
        removeFingerprintOnSuccess: true,
      })
      // Restores the selected files and their tus URLs after a reload, so the upload
      // resumes where the server says it stands.
      .use(GoldenRetriever, { serviceWorker: false });
    uppy.on('upload-success', () => refresh());
  }

  function show() {
    const signedIn = Boolean(token());
    $('#login').hidden = signedIn;
    $('#app').hidden = !signedIn;
    $('#logout').hidden = !signedIn;
    $('#who').textContent = signedIn ? sessionStorage.getItem(USER) || '' : '';
    if (signedIn) {
      if (!uppy) startUppy();
      refresh();
    }
  }

  function logout() {
    sessionStorage.removeItem(TOKEN);
    sessionStorage.removeItem(USER);
    show();
  }

  $('#login').addEventListener('submit', async (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    const credentials = { username: form.get('username'), password: form.get('password') };
    $('#login-error').textContent = '';
    const res = await fetch('/api-token-auth/', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(credentials),
    });
    const data = await res.json().catch(() => ({}));
    if (!res.ok) {
      $('#login-error').textContent = data.detail || `Login failed (${res.status}).`;
      return;
    }
    sessionStorage.setItem(TOKEN, data.token);
    sessionStorage.setItem(USER, credentials.username);
    event.target.reset();
    show();
  });
  $('#logout').addEventListener('click', logout);
  show();
})();

// tus-js-client (the client Uppy's Tus plugin drives) against a running Ferry: a 64 MiB
// file in 8 MiB chunks, with the whole file's md5 in the metadata; the upload is
// aborted part-way (abort() cuts the PATCH in flight) and a new Upload resumes it from
// the offset the server reports; then the file is listed at /storage/files/ and its redirect download
// is byte-identical. Then another 64 MiB file in four parallel partial uploads joined by
// a final one (concatenation), listed and byte-identical too. Takes BASE, E2E_USER and
// E2E_PASSWORD.
import { createHash, randomBytes } from 'node:crypto';
import assert from 'node:assert/strict';
import * as tus from 'tus-js-client';

const BASE = process.env.BASE ?? 'http://127.0.0.1:8000';
const SIZE = 64 * 1024 * 1024;
const CHUNK = 8 * 1024 * 1024;
const ABORT_AT = 20 * 1024 * 1024;

async function login() {
  const res = await fetch(`${BASE}/api-token-auth/`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username: process.env.E2E_USER, password: process.env.E2E_PASSWORD }),
  });
  const text = await res.text();
  assert.equal(res.status, 200, text);
  return JSON.parse(text).token;
}

// Runs one Upload of `data` until it succeeds, fails, or `stop(bytesSent)` aborts it
// (then resolves with 'aborted'). `patches` collects each PATCH's Upload-Offset.
function run(data, options, stop, patches = []) {
  return new Promise((resolve, reject) => {
    const upload = new tus.Upload(data, {
      ...options,
      onBeforeRequest(req) {
        if (req.getMethod() === 'PATCH') patches.push(Number(req.getHeader('Upload-Offset')));
      },
      onProgress(sent) {
        if (stop?.(sent)) {
          upload.abort().then(() => resolve({ upload, outcome: 'aborted' }), reject);
        }
      },
      onError: reject,
      onSuccess: () => resolve({ upload, outcome: 'done' }),
    });
    upload.start();
  });
}

const token = await login();
const data = randomBytes(SIZE);
const md5 = createHash('md5').update(data).digest('hex');
const common = {
  endpoint: `${BASE}/files/`,
  chunkSize: CHUNK,
  headers: { Authorization: `Bearer ${token}` },
  metadata: { filename: 'tus-js.bin', filetype: 'application/octet-stream', md5 },
  // 409 (the aborted PATCH may still hold the writer lease for a moment) is retried.
  retryDelays: [0, 250, 500, 1000, 2000],
};

let aborted = false;
const first = await run(data, common, (sent) => {
  if (!aborted && sent >= ABORT_AT) {
    aborted = true;
    return true;
  }
  return false;
});
assert.equal(first.outcome, 'aborted');
const url = first.upload.url;
assert.ok(url, 'the upload was created');

const head = await fetch(url, { method: 'HEAD', headers: { Authorization: `Bearer ${token}`, 'Tus-Resumable': '1.0.0' } });
const offset = Number(head.headers.get('upload-offset'));
// Where the abort landed depends on how often node reports progress (the chunk in
// flight is either recorded whole or not at all); the resume must start there.
assert.ok(offset >= 2 * CHUNK && offset < SIZE && offset % CHUNK === 0, `after the abort the offset is ${offset}`);

// A new Upload resumes from the server's offset (HEAD), as after a page reload.
const patches = [];
const second = await run(data, { ...common, uploadUrl: url }, () => false, patches);
assert.equal(second.outcome, 'done');
assert.equal(patches[0], offset, `the resumed upload's first PATCH is at ${patches[0]}, not the server's ${offset}`);

const id = url.split('/').pop();
const list = await (await fetch(`${BASE}/storage/files/`, { headers: { Authorization: `JWT ${token}` } })).json();
const listed = list.results.find((f) => f.id === id);
assert.ok(listed, `${id} is listed`);
assert.equal(listed.md5, md5);
assert.equal(listed.filename, 'tus-js.bin');
// The last PATCH answered after the verdict: downloadable at once, no retry.
const got = await fetch(`${BASE}/storage/download/${id}/`, { headers: { Authorization: `JWT ${token}` } });
assert.equal(got.status, 200);
const body = Buffer.from(await got.arrayBuffer());
assert.ok(body.equals(data), 'downloaded bytes differ');

// Parallel parts (concatenation): four partial uploads, then the final one.
const parallel = randomBytes(SIZE);
const parallelMd5 = createHash('md5').update(parallel).digest('hex');
const concatenated = await run(parallel, {
  ...common,
  parallelUploads: 4,
  metadata: { filename: 'tus-js-parallel.bin', md5: parallelMd5 },
});
assert.equal(concatenated.outcome, 'done');
const finalId = concatenated.upload.url.split('/').pop();
const finalList = await (await fetch(`${BASE}/storage/files/`, { headers: { Authorization: `JWT ${token}` } })).json();
assert.equal(finalList.results.find((f) => f.id === finalId)?.md5, parallelMd5, 'the concatenated file is listed');
const joined = await fetch(`${BASE}/storage/download/${finalId}/`, { headers: { Authorization: `JWT ${token}` } });
assert.ok(Buffer.from(await joined.arrayBuffer()).equals(parallel), 'the concatenated download differs');
console.log('tus-js-client: 2 passed, 0 failed');

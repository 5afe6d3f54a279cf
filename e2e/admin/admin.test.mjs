// Browser test of the admin page (/admin/) in Debian's headless Chromium, driven by
// playwright-core: log in, add a node and watch it turn up with its free space (live,
// without a reload), drain it, check the CSRF guard, visit every page (the jobs page
// with each job's worker and an upload's timeline, the workers with their queues);
// then at fleet scale (issue 18): filter a user's 252 uploads by user and state, page
// through 250 of them, open an upload's detail from its id, remove the drained empty
// node, be refused removing a node that holds replicas, edit a quota and disable a
// user; steer jobs (issue 11): pause replicate from the Queues page, make a dead letter
// (a queued replicate job whose node is disabled), resume, find the dead letter with
// its reason, open its record from its id, replay it and see it done; log out, and see a non-administrator refused. Screenshots go to
// $FERRY_E2E_ARTIFACTS.
//
// Environment:
//   FERRY_E2E_BASE_URL   the API, e.g. http://127.0.0.1:8000
//   FERRY_E2E_ADMIN      user:password of an administrator
//   FERRY_E2E_USER       user:password of a user who is not an administrator
//   FERRY_E2E_NODE_JSON  {"name","ssh_host","ssh_port","ssh_user","root_path","public_url","lat","lon"}
//                        of a running node agent (so it reports free space)
//   FERRY_E2E_ARTIFACTS  directory for screenshots (default ./artifacts)
//
// Prints `admin browser test: N passed, M failed` last; exits non-zero on any failure.

import { createHash } from "node:crypto";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const env = (name, fallback) => {
  const value = process.env[name] ?? fallback;
  if (value === undefined || value === "") {
    console.error(`${name} is required`);
    process.exit(2);
  }
  return value;
};
const credentials = (name) => {
  const raw = env(name);
  const i = raw.indexOf(":");
  if (i < 1) {
    console.error(`${name} must be user:password`);
    process.exit(2);
  }
  return { username: raw.slice(0, i), password: raw.slice(i + 1) };
};

const BASE = env("FERRY_E2E_BASE_URL").replace(/\/+$/, "");
const ADMIN = credentials("FERRY_E2E_ADMIN");
const USER = credentials("FERRY_E2E_USER");
const NODE = JSON.parse(env("FERRY_E2E_NODE_JSON"));
const ARTIFACTS = env("FERRY_E2E_ARTIFACTS", join(process.cwd(), "artifacts"));
mkdirSync(ARTIFACTS, { recursive: true });

const LAUNCH = {
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
  ],
};

function check(condition, message) {
  if (!condition) throw new Error(message);
}

async function login(page, { username, password }) {
  await page.goto(`${BASE}/admin/login`);
  await page.fill('input[name="username"]', username);
  await page.fill('input[name="password"]', password);
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.url() === `${BASE}/admin/login` && r.request().method() === "POST"),
    page.click('form.login button[type="submit"]'),
  ]);
  await page.waitForLoadState("load");
  return response;
}

const nodeRow = (page, name) => page.locator(`#nodes-body tr[data-node="${name}"]`);

let passed = 0;
let failed = 0;
const browser = await chromium.launch(LAUNCH);
const admin = await browser.newContext({ viewport: { width: 1400, height: 900 } });
const page = await admin.newPage();
page.setDefaultTimeout(15_000);
let nodeName = NODE.name;
let stopped = false;

async function step(name, body, p = page) {
  if (stopped) {
    console.log(`SKIP ${name}`);
    failed += 1;
    return;
  }
  const t0 = Date.now();
  try {
    await body();
    passed += 1;
    console.log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (error) {
    failed += 1;
    // The steps build on each other: after one fails, the rest are counted as failed.
    stopped = true;
    console.log(`FAIL ${name}: ${error.message}`);
    console.log(`     at ${p.url()}`);
    const shot = join(ARTIFACTS, `admin-failure-${passed + failed}.png`);
    await p.screenshot({ path: shot, fullPage: true }).catch(() => {});
    console.log(`     screenshot ${shot}`);
  }
}

try {
  await step("an unauthenticated visit is redirected to the login page", async () => {
    const response = await page.goto(`${BASE}/admin/`);
    check(page.url() === `${BASE}/admin/login`, `landed on ${page.url()}`);
    check(response.status() === 200, `login page answered ${response.status()}`);
    const redirect = await response.request().redirectedFrom()?.response();
    check(redirect?.status() === 303, `the redirect was ${redirect?.status()}, not 303`);
  });

  await step("the administrator logs in", async () => {
    const response = await login(page, ADMIN);
    check(response.status() === 303, `POST /admin/login answered ${response.status()}`);
    check(page.url() === `${BASE}/admin/`, `landed on ${page.url()}`);
    check((await page.textContent("h1")) === "Nodes", "no Nodes heading");
    const cookie = (await admin.cookies(`${BASE}/admin/`)).find((c) => c.name === "ferry_admin");
    check(cookie?.httpOnly && cookie.sameSite === "Strict" && cookie.path === "/admin", `cookie ${JSON.stringify(cookie)}`);
  });

  await step("a node is added through the form", async () => {
    if ((await nodeRow(page, nodeName).count()) > 0) {
      // A re-run against the same cluster: add it under a fresh name.
      nodeName = `${NODE.name}-${Date.now().toString(36)}`.slice(0, 63);
    }
    const form = page.locator('form[action="/admin/nodes"]');
    await form.locator('input[name="name"]').fill(nodeName);
    for (const field of ["ssh_host", "ssh_port", "ssh_user", "root_path", "public_url", "lat", "lon"]) {
      await form.locator(`input[name="${field}"]`).fill(String(NODE[field] ?? ""));
    }
    await Promise.all([page.waitForURL(/\/admin\/\?done=added/), form.locator('button[type="submit"]').click()]);
    check((await page.textContent(".notice.ok")).includes(nodeName), "no confirmation naming the node");
    check((await nodeRow(page, nodeName).count()) === 1, "the node is not in the table");
  });

  await step("the new node turns up with its free space, refreshed live", async () => {
    // Marks this document: if the page reloaded, the mark would be gone.
    await page.evaluate(() => { window.__ferryNoReload = true; });
    const row = nodeRow(page, nodeName);
    await row.locator("td.c-health", { hasText: /^up$/ }).waitFor({ timeout: 60_000 });
    await row.locator("td.c-free", { hasText: /^\d+(\.\d)? (B|KiB|MiB|GiB|TiB|PiB)$/ }).waitFor({ timeout: 60_000 });
    const free = (await row.locator("td.c-free").textContent()).trim();
    const total = (await row.locator("td.c-total").textContent()).trim();
    check(await page.evaluate(() => window.__ferryNoReload === true), "the page reloaded instead of refreshing");
    check(/^(\d|never)/.test(await row.locator("td.c-heartbeat").textContent()), "no heartbeat age");
    console.log(`     ${nodeName}: free ${free} of ${total}`);
  });

  await step("a screenshot of the nodes page is taken", async () => {
    const path = join(ARTIFACTS, "admin-nodes.png");
    await page.screenshot({ path, fullPage: true });
    console.log(`     screenshot ${path}`);
  });

  await step("the node is drained", async () => {
    const row = nodeRow(page, nodeName);
    await Promise.all([
      page.waitForURL(/\/admin\/\?done=draining/),
      row.locator('button[data-action="draining"]').click(),
    ]);
    check((await nodeRow(page, nodeName).locator("td.c-state").textContent()).trim() === "draining", "not draining");
    check((await page.textContent(".notice.ok")).includes("draining"), "no confirmation");
    // It stays draining across live refreshes.
    await page.waitForTimeout(2500);
    check((await nodeRow(page, nodeName).locator("td.c-state").textContent()).trim() === "draining", "not draining");
  });

  await step("a form posted without or with a wrong CSRF token is refused", async () => {
    const id = await nodeRow(page, nodeName).getAttribute("data-id");
    const url = `${BASE}/admin/nodes/${id}/state`;
    const none = await page.request.post(url, { form: { state: "disabled" }, maxRedirects: 0 });
    check(none.status() === 403, `without a token: ${none.status()}`);
    const wrong = await page.request.post(url, { form: { state: "disabled", csrf: "00".repeat(32) }, maxRedirects: 0 });
    check(wrong.status() === 403, `with a wrong token: ${wrong.status()}`);
    const nodes = await (await page.request.get(`${BASE}/admin/nodes.json`)).json();
    check(nodes.nodes.find((n) => n.name === nodeName)?.state === "draining", "the forged POST changed the node");
  });

  await step("users, uploads, files and queues render", async () => {
    for (const [path, heading] of [["users", "Users"], ["uploads", "Uploads"], ["files", "Files"], ["queues", "Queues"]]) {
      const response = await page.goto(`${BASE}/admin/${path}`);
      check(response.status() === 200, `/admin/${path} answered ${response.status()}`);
      check((await page.textContent("h1")) === heading, `/admin/${path} has no ${heading} heading`);
      if (path === "users") {
        check((await page.locator(`#users tr[data-user="${ADMIN.username}"]`).count()) === 1, "the admin is not listed");
      }
    }
    const queues = await page.locator("#queues tr[data-queue]").count();
    const unreachable = await page.locator("text=RabbitMQ management API unreachable").count();
    check(queues > 0 || unreachable > 0, "neither queues nor the unreachable notice");
    check((await page.locator("#rabbit-ui").count()) === 1, "no link to the RabbitMQ management UI");
    console.log(`     ${queues} ferry queues listed${unreachable ? " (management API unreachable)" : ""}`);
  });

  await step("jobs and workers render: the workers with their queues, each job with its worker and timeline", async () => {
    const workers = await page.goto(`${BASE}/admin/workers`);
    check(workers.status() === 200, `/admin/workers answered ${workers.status()}`);
    check((await page.textContent("h1")) === "Workers", "no Workers heading");
    const running = page.locator('#workers tr[data-state="running"]');
    check((await running.count()) >= 2, `${await running.count()} running workers listed, expected the 2 dev workers`);
    check(/assemble, replicate, delete/.test(await running.first().textContent()), "a worker without its queues");
    const jobs = await page.goto(`${BASE}/admin/jobs?state=done`);
    check(jobs.status() === 200, `/admin/jobs answered ${jobs.status()}`);
    check((await page.textContent("h1")) === "Jobs", "no Jobs heading");
    const done = page.locator('#jobs tr[data-state="done"]');
    check((await done.count()) > 0, "no finished job listed (the README sequence uploaded files)");
    const worker = (await done.first().locator("td").nth(7).textContent()).trim();
    check(/.+:\d+$/.test(worker), `a finished job without its worker: ${worker}`);
    // The upload link filters to that upload's timeline, oldest first.
    await Promise.all([
      page.waitForURL(/\/admin\/jobs\?upload=/),
      done.first().locator('td a[href^="/admin/jobs?upload="]').click(),
    ]);
    const kinds = await page.locator("#jobs tbody tr td:nth-child(3)").allTextContents();
    check(kinds.length > 0 && kinds.every((k) => /^(assemble|replicate|verify|delete|drop_replica)$/.test(k)), `kinds ${kinds}`);
    const bad = await page.request.get(`${BASE}/admin/jobs?state=running`);
    check(bad.status() === 400, `an unknown state filter answered ${bad.status()}`);
    const path = join(ARTIFACTS, "admin-jobs.png");
    await page.screenshot({ path, fullPage: true });
    console.log(`     ${kinds.length} job(s) in the upload's timeline (${kinds.join(", ")}); screenshot ${path}`);
  });

  // Fleet scale (issue 18): a user of its own with 250 open uploads and 2 complete ones.
  const LOAD = { username: `load-${Date.now().toString(36)}`, password: "load-user-password" };
  let loadToken = "";
  const csrf = async () => page.getAttribute('meta[name="ferry-csrf"]', "content");
  const putChunk = (path, range, bytes, token = loadToken) =>
    page.request.put(`${BASE}${path}`, {
      headers: { Authorization: `JWT ${token}`, "Content-Range": range, "Content-Type": "application/octet-stream" },
      data: bytes,
    });

  await step("a user is created on the users page and makes 252 uploads", async () => {
    await page.goto(`${BASE}/admin/users`);
    const form = page.locator('form[action="/admin/users"][method="post"]');
    await form.locator('input[name="username"]').fill(LOAD.username);
    await form.locator('input[name="password"]').fill(LOAD.password);
    await Promise.all([page.waitForURL(/done=created/), form.locator('button[type="submit"]').click()]);
    const token = await page.request.post(`${BASE}/api-token-auth/`, { form: LOAD });
    check(token.ok(), `token: ${token.status()}`);
    loadToken = (await token.json()).token;
    for (let i = 0; i < 250; i += 10) {
      const batch = [];
      for (let j = i; j < i + 10; j += 1) {
        const name = `load-${String(j).padStart(3, "0")}.bin`;
        batch.push(putChunk(`/storage/tmp-upload/?filename=${name}`, "bytes 0-9/100", Buffer.alloc(10, 7)));
      }
      for (const r of await Promise.all(batch)) check(r.status() === 200, `a chunk PUT answered ${r.status()}`);
    }
    for (const name of ["done-a.bin", "done-b.bin"]) {
      const bytes = Buffer.from(`${name} ${Date.now()} complete`);
      const r = await putChunk(`/storage/tmp-upload/?filename=${name}`, `bytes 0-${bytes.length - 1}/${bytes.length}`, bytes);
      check(r.status() === 200, `PUT ${name}: ${r.status()}`);
      const md5 = createHash("md5").update(bytes).digest("hex");
      let done;
      for (let attempt = 0; attempt < 5; attempt += 1) {
        done = await page.request.post((await r.json()).url, {
          headers: { Authorization: `JWT ${loadToken}` },
          form: { md5 },
        });
        if (done.status() !== 202) break;
      }
      check(done.status() === 200, `completing ${name}: ${done.status()}`);
    }
  });

  await step("uploads are filtered by user and state", async () => {
    await page.goto(`${BASE}/admin/uploads`);
    const filters = page.locator("#filters");
    await filters.locator('input[name="user"]').fill(LOAD.username);
    await filters.locator('select[name="state"]').selectOption("complete");
    await Promise.all([page.waitForURL(/state=complete/), filters.locator('button[type="submit"]').click()]);
    const rows = page.locator("#uploads tbody tr[data-upload]");
    check((await rows.count()) === 2, `${await rows.count()} complete uploads listed, expected 2`);
    for (const row of await rows.all()) {
      check((await row.getAttribute("data-user")) === LOAD.username, "another user's upload");
      check((await row.getAttribute("data-state")) === "complete", "an upload in another state");
      check((await row.locator("td.c-expires").textContent()).trim() === "—", "a completed upload shows an expiry");
    }
    await filters.locator('select[name="state"]').selectOption("uploading");
    await Promise.all([page.waitForURL(/state=uploading/), filters.locator('button[type="submit"]').click()]);
    check((await page.textContent("#pager .range")).trim() === "1-50 of 250", await page.textContent("#pager"));
    const path = join(ARTIFACTS, "admin-uploads-filtered.png");
    await page.screenshot({ path, fullPage: true });
    console.log(`     screenshot ${path}`);
  });

  await step("the 250 open uploads are paged through", async () => {
    const ids = new Set();
    for (let p = 1; p <= 5; p += 1) {
      const rows = page.locator("#uploads tbody tr[data-upload]");
      check((await rows.count()) === 50, `page ${p} has ${await rows.count()} rows`);
      for (const id of await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute("data-upload")))) ids.add(id);
      const states = await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute("data-state")));
      check(states.every((s) => s === "uploading"), `page ${p}: states ${[...new Set(states)]}`);
      if (p < 5) {
        await Promise.all([page.waitForURL(new RegExp(`page=${p + 1}`)), page.click('#pager a[rel="next"]')]);
      }
    }
    check(ids.size === 250, `${ids.size} distinct uploads over 5 pages`);
    check((await page.textContent("#pager .range")).trim() === "201-250 of 250", await page.textContent("#pager"));
    check((await page.locator('#pager a[rel="next"]').count()) === 0, "a next page after the last");
    check(/user=/.test(await page.getAttribute('#pager a[rel="prev"]', "href")), "the pager lost the filter");
  });

  await step("an upload's detail opens from its id: chunks, digests, job timeline, replicas", async () => {
    await page.goto(`${BASE}/admin/uploads?user=${LOAD.username}&state=complete`);
    const link = page.locator("#uploads tbody tr[data-upload] td a").first();
    const id = (await link.textContent()).trim();
    await Promise.all([page.waitForURL(`${BASE}/admin/uploads/${id}`), link.click()]);
    check((await page.textContent("h1")) === `Upload ${id}`, `heading ${await page.textContent("h1")}`);
    check((await page.textContent("#upload-state")) === "complete", "not complete");
    check((await page.locator("#chunks tbody tr").count()) === 1, "not one chunk");
    check(/[0-9a-f]{64}/.test(await page.textContent("dl.facts")), "no sha256 among the digests");
    const kinds = await page.locator("#timeline tbody tr td:nth-child(2)").allTextContents();
    // The API recorded the file itself at completion: the timeline is its copies' jobs.
    check(kinds.length >= 1 && kinds.every((k) => k === "replicate"), `timeline kinds ${kinds}`);
    const present = page.locator("#replicas tbody tr", { hasText: "present" });
    check((await present.count()) >= 1, "no present replica");
    const path = join(ARTIFACTS, "admin-upload-detail.png");
    await page.screenshot({ path, fullPage: true });
    console.log(`     ${id}: ${kinds.length} job(s), ${await present.count()} present replica(s); screenshot ${path}`);
  });

  const nodesJson = async () => (await (await page.request.get(`${BASE}/admin/nodes.json`)).json()).nodes;

  await step("the drained, empty node is disabled (no Drain offered) and removed from its page", async () => {
    const deadline = Date.now() + 60_000;
    let node;
    while (Date.now() < deadline) {
      node = (await nodesJson()).find((n) => n.name === nodeName);
      if (node && node.replicas === 0) break;
      await page.waitForTimeout(1000);
    }
    check(node?.replicas === 0, `${nodeName} still holds ${node?.replicas} replicas`);
    // Disabled, it is offered Activate, never Drain (and stays removable).
    await page.goto(`${BASE}/admin/`);
    await Promise.all([page.waitForURL(/done=disabled/), nodeRow(page, nodeName).locator('button[data-action="disabled"]').click()]);
    const row = nodeRow(page, nodeName);
    check((await row.locator('button[data-action="draining"]').count()) === 0, "Drain offered on a disabled node");
    check((await row.locator('button[data-action="active"]').count()) === 1, "Activate not offered on a disabled node");
    await page.waitForTimeout(2500);
    check((await row.locator('button[data-action="draining"]').count()) === 0, "the live refresh offered Drain again");
    await page.goto(`${BASE}/admin/nodes/${node.id}`);
    check(/no replica/.test(await page.textContent("#remove")), await page.textContent("#remove"));
    await Promise.all([page.waitForURL(/done=removed/), page.click("#remove-node")]);
    check((await page.textContent(".notice.ok")).includes(`${nodeName} was removed`), "no confirmation");
    check((await nodeRow(page, nodeName).count()) === 0, "the removed node is still listed");
    check((await page.request.get(`${BASE}/admin/nodes/${node.id}`)).status() === 404, "its page still answers");
  });

  await step("removing a node that holds replicas is refused with the reason", async () => {
    const holder = (await nodesJson()).filter((n) => n.state === "active").sort((a, b) => b.replicas - a.replicas)[0];
    check(holder?.replicas > 0, "no active node holds a replica");
    // Active: refused, drain first.
    await page.goto(`${BASE}/admin/nodes/${holder.id}`);
    const [active] = await Promise.all([page.waitForResponse(/\/remove$/), page.click("#remove-node")]);
    check(active.status() === 409, `removing an active node answered ${active.status()}`);
    check(/drain it first/.test(await page.textContent("main")), await page.textContent("main"));
    // Draining but still holding its copies: refused with the count; then back in service.
    await page.goto(`${BASE}/admin/`);
    await Promise.all([
      page.waitForURL(/done=draining/),
      nodeRow(page, holder.name).locator('button[data-action="draining"]').click(),
    ]);
    await page.goto(`${BASE}/admin/nodes/${holder.id}`);
    const [held] = await Promise.all([page.waitForResponse(/\/remove$/), page.click("#remove-node")]);
    const text = await page.textContent("main");
    await page.goto(`${BASE}/admin/`);
    await Promise.all([
      page.waitForURL(/done=active/),
      nodeRow(page, holder.name).locator('button[data-action="active"]').click(),
    ]);
    check(held.status() === 409, `removing a node holding replicas answered ${held.status()}`);
    check(/still holds \d+ replica/.test(text), text);
    check((await nodeRow(page, holder.name).count()) === 1, "the node is gone");
    const path = join(ARTIFACTS, "admin-node-detail.png");
    await page.goto(`${BASE}/admin/nodes/${holder.id}`);
    check((await page.locator("#events tbody tr[data-up]").count()) >= 1, "no health history");
    check(/free/.test(await page.textContent("#space-trend")), await page.textContent("#space-trend"));
    await page.screenshot({ path, fullPage: true });
    console.log(`     ${holder.name} (${holder.replicas} replicas) kept; screenshot ${path}`);
  });

  await step("a user's quota is edited and holds at once", async () => {
    await page.goto(`${BASE}/admin/users?name=${LOAD.username}`);
    const row = page.locator(`#users tr[data-user="${LOAD.username}"]`);
    await row.locator('input[name="quota"]').fill("1KiB");
    await Promise.all([page.waitForURL(/done=quota/), row.locator(".quota-form button").click()]);
    await page.goto(`${BASE}/admin/users?name=${LOAD.username}`);
    check((await row.locator(".quota").textContent()).trim() === "1.0 KiB", await row.locator(".quota").textContent());
    const refused = await putChunk("/storage/tmp-upload/?filename=big.bin", "bytes 0-9/5000", Buffer.alloc(10, 1));
    check(refused.status() === 413, `an upload over the new quota answered ${refused.status()}`);
  });

  await step("a user is disabled: their token stops at once", async () => {
    const row = page.locator(`#users tr[data-user="${LOAD.username}"]`);
    await Promise.all([page.waitForURL(/done=disabled/), row.locator('form[action$="/disable"] button').click()]);
    const files = await page.request.get(`${BASE}/storage/files/`, { headers: { Authorization: `JWT ${loadToken}` } });
    check(files.status() === 401, `the disabled user's token answered ${files.status()}`);
    await page.goto(`${BASE}/admin/users?state=disabled`);
    check((await page.locator(`#users tr[data-user="${LOAD.username}"][data-state="disabled"]`).count()) === 1, "not listed as disabled");
    const path = join(ARTIFACTS, "admin-users.png");
    await page.screenshot({ path, fullPage: true });
    console.log(`     screenshot ${path}`);
  });

  // Jobs you can steer (issue 11): pause a kind from the Queues page, make a dead letter
  // through the real pipeline (a replicate job whose node is disabled while it waits in
  // the paused queue), find it with its reason, replay it from the page, see it done.
  const kindRow = (kind) => page.locator(`#kinds tr[data-kind="${kind}"]`);
  const consumers = async (queue) => {
    const cell = page.locator(`#queues tr[data-queue="${queue}"] td:nth-child(4)`);
    return (await cell.count()) === 1 ? (await cell.textContent()).trim() : "";
  };
  // Reloads the Queues page until `done` holds (the broker's figures lag by up to 5 s).
  const untilQueues = async (what, done, timeout = 45_000) => {
    const deadline = Date.now() + timeout;
    for (;;) {
      await page.goto(`${BASE}/admin/queues`);
      if (await done()) return;
      check(Date.now() < deadline, `${what}: not within ${timeout / 1000} s`);
      await page.waitForTimeout(1000);
    }
  };
  let steered = { upload: "", node: 0, job: "" };

  await step("replicate is paused from the Queues page: shown paused, its consumers leave", async () => {
    await page.goto(`${BASE}/admin/queues`);
    check((await kindRow("replicate").getAttribute("data-paused")) === "false", "replicate is paused already");
    await Promise.all([page.waitForURL(/done=paused&kind=replicate/), kindRow("replicate").locator('button[data-action="pause"]').click()]);
    check((await page.textContent(".notice.ok")).includes("ferry.replicate paused"), await page.textContent("main"));
    check((await kindRow("replicate").getAttribute("data-paused")) === "true", "not shown paused");
    const shown = (await kindRow("replicate").locator("td.c-consumption").textContent()).trim();
    check(/^paused since .* by admin \(admin page\)$/.test(shown), shown);
    check((await kindRow("assemble").getAttribute("data-paused")) === "false", "another kind paused too");
    check((await kindRow("assemble").locator('button[data-action="pause"]').count()) === 1, "no Pause on assemble");
    // A second pause (a stale page) is refused, saying why.
    const again = await page.request.post(`${BASE}/admin/queues/replicate/pause`, { form: { csrf: await csrf() }, maxRedirects: 0 });
    check(again.status() === 409 && /is paused already/.test(await again.text()), `a second pause answered ${again.status()}`);
    const forged = await page.request.post(`${BASE}/admin/queues/replicate/resume`, { form: {}, maxRedirects: 0 });
    check(forged.status() === 403, `a resume without the CSRF token answered ${forged.status()}`);
    // The workers read the pause with their next heartbeat and cancel their consumers.
    await untilQueues("ferry.replicate without consumers", async () => (await consumers("ferry.replicate")) === "0");
    const path = join(ARTIFACTS, "admin-queues-paused.png");
    await page.screenshot({ path, fullPage: true });
    console.log(`     screenshot ${path}`);
  });

  await step("an upload's replicate jobs wait in the paused queue; one's node is disabled", async () => {
    const token = await page.request.post(`${BASE}/api-token-auth/`, { form: USER });
    check(token.ok(), `token for ${USER.username}: ${token.status()}`);
    const userToken = (await token.json()).token;
    const bytes = Buffer.from(`steered ${Date.now()} ${"x".repeat(4000)}`);
    const put = await putChunk("/storage/tmp-upload/?filename=steered.bin", `bytes 0-${bytes.length - 1}/${bytes.length}`, bytes, userToken);
    check(put.status() === 200, `PUT: ${put.status()}`);
    const complete = new URL((await put.json()).url);
    complete.searchParams.set("wait", "0");
    const done = await page.request.post(complete.toString(), {
      headers: { Authorization: `JWT ${userToken}` },
      form: { md5: createHash("md5").update(bytes).digest("hex") },
    });
    check(done.status() === 202 || done.status() === 200, `completing: ${done.status()}`);
    steered.upload = (await done.json()).id;
    check(/^[0-9a-f-]{36}$/.test(steered.upload), `upload id ${steered.upload}`);
    // Recorded as a file (by the API, or an assemble job: not paused); its replicate jobs
    // are queued, none taken.
    const queued = page.locator('#jobs tbody tr[data-state="queued"]');
    const deadline = Date.now() + 60_000;
    for (;;) {
      await page.goto(`${BASE}/admin/jobs?upload=${steered.upload}&kind=replicate`);
      if ((await queued.count()) >= 2) break;
      check(Date.now() < deadline, `${await queued.count()} queued replicate job(s) after 60 s`);
      await page.waitForTimeout(1000);
    }
    check((await page.locator('#jobs tbody tr[data-state="done"]').count()) === 0, "a replicate job ran while paused");
    steered.job = await queued.first().getAttribute("data-job");
    steered.node = Number((await queued.first().locator("td").nth(6).textContent()).trim());
    check(steered.node > 0, `node ${steered.node}`);
    await page.goto(`${BASE}/admin/`);
    const row = page.locator(`#nodes-body tr[data-id="${steered.node}"]`);
    await Promise.all([page.waitForURL(/done=disabled/), row.locator('button[data-action="disabled"]').click()]);
    check((await row.locator("td.c-state").textContent()).trim() === "disabled", "the node is not disabled");
    console.log(`     upload ${steered.upload}: job ${steered.job} waits for node ${steered.node}, now disabled`);
  });

  await step("replicate is resumed from the Queues page: consuming again", async () => {
    await page.goto(`${BASE}/admin/queues`);
    await Promise.all([page.waitForURL(/done=resumed&kind=replicate/), kindRow("replicate").locator('button[data-action="resume"]').click()]);
    check((await page.textContent(".notice.ok")).includes("ferry.replicate resumed"), await page.textContent("main"));
    check((await kindRow("replicate").getAttribute("data-paused")) === "false", "still shown paused");
    check((await kindRow("replicate").locator("td.c-consumption").textContent()).trim() === "consuming", "not consuming");
    await untilQueues("ferry.replicate consumed again", async () => Number(await consumers("ferry.replicate")) >= 1);
  });

  await step("the dead letter is found from the Queues page with its reason", async () => {
    await untilQueues("the dead letter recorded", async () => (await page.locator("#dead-letters a").count()) === 1, 90_000);
    await Promise.all([page.waitForURL(/\/admin\/jobs\?state=dead/), page.click("#dead-letters a")]);
    const row = page.locator(`#jobs tr[data-job="${steered.job}"]`);
    // Other dead letters may be older: the link is there before this one is recorded.
    const deadline = Date.now() + 90_000;
    while ((await row.count()) === 0) {
      check(Date.now() < deadline, "the dead letter is not listed among the dead after 90 s");
      await page.waitForTimeout(1000);
      await page.reload();
    }
    check((await row.getAttribute("data-state")) === "dead", "not dead");
    const reason = (await row.locator("td.error").textContent()).trim();
    check(reason.includes(`node ${steered.node} is disabled`), `reason: ${reason}`);
    check((await row.locator("button.replay").count()) === 1, "no Replay button");
    const path = join(ARTIFACTS, "admin-dead-letter.png");
    await page.screenshot({ path, fullPage: true });
    // Its id opens the whole record with the message body.
    await Promise.all([page.waitForURL(`${BASE}/admin/jobs/${steered.job}`), row.locator("a.job-id").click()]);
    check((await page.textContent("h1")) === `Job ${steered.job}`, await page.textContent("h1"));
    check((await page.textContent("#job-state")) === "dead", await page.textContent("#job-state"));
    check((await page.textContent("#job-error")).includes(`node ${steered.node} is disabled`), await page.textContent("#job-error"));
    const payload = JSON.parse(await page.textContent("#job-payload"));
    check(payload.job === "replicate" && payload.node === steered.node && payload.file === steered.upload, JSON.stringify(payload));
    check((await page.locator("#job-actions button.replay").count()) === 1, "no Replay on the job's page");
    console.log(`     ${steered.job}: ${reason}; screenshot ${path}`);
  });

  await step("the node back in service, the dead letter is replayed from the page and completes", async () => {
    await page.goto(`${BASE}/admin/`);
    const node = page.locator(`#nodes-body tr[data-id="${steered.node}"]`);
    await Promise.all([page.waitForURL(/done=active/), node.locator('button[data-action="active"]').click()]);
    await page.goto(`${BASE}/admin/jobs/${steered.job}`);
    await Promise.all([page.waitForURL(/done=replayed/), page.click("#job-actions button.replay")]);
    check((await page.textContent(".notice.ok")).includes("Replayed"), await page.textContent("main"));
    const deadline = Date.now() + 90_000;
    for (;;) {
      await page.goto(`${BASE}/admin/jobs/${steered.job}`);
      if ((await page.textContent("#job-state")) === "done") break;
      check(Date.now() < deadline, `the replayed job is ${await page.textContent("#job-state")} after 90 s`);
      await page.waitForTimeout(1000);
    }
    check(/replayed 1×/.test(await page.textContent("dl.facts")), await page.textContent("dl.facts"));
    // The dead letter's reason is kept, as history (the attempt that died, with its
    // worker), not as the done job's error.
    check((await page.locator("#job-error").count()) === 0, "a done job shows an error");
    const died = page.locator('#job-attempts tr[data-outcome="dead"]');
    check((await died.count()) === 1, await page.textContent("main"));
    const history = await died.textContent();
    check(history.includes("is disabled") && history.includes("first"), history);
    check((await page.locator("#job-actions").count()) === 0, "Replay still offered on a done job");
    const again = await page.request.post(`${BASE}/admin/jobs/${steered.job}/replay`, { form: { csrf: await csrf() }, maxRedirects: 0 });
    check(again.status() === 409, `replaying a done job answered ${again.status()}`);
    await page.goto(`${BASE}/admin/uploads/${steered.upload}`);
    const present = await page.locator("#replicas tbody tr", { hasText: "present" }).count();
    check(present >= 2, `${present} present replica(s)`);
    await page.goto(`${BASE}/admin/jobs?upload=${steered.upload}`);
    const path = join(ARTIFACTS, "admin-dead-letter-replayed.png");
    await page.screenshot({ path, fullPage: true });
    console.log(`     ${steered.job} done under its own id; ${present} replicas; screenshot ${path}`);
  });

  await step("the queues page shows rates and how old its figures are, and reloads itself", async () => {
    await page.goto(`${BASE}/admin/queues`);
    check(/sampled every 5 s/.test(await page.textContent("#queues-age")), await page.textContent("#queues-age"));
    const rows = await page.locator("#queues tr[data-queue] td.c-in").count();
    const unreachable = await page.locator("text=RabbitMQ management API unreachable").count();
    check(rows > 0 || unreachable > 0, "no rate column and no unreachable notice");
    const first = await page.textContent("#queues-age");
    await page.waitForEvent("load", { timeout: 12_000 });
    check((await page.textContent("#queues-age")) !== first, "the page reloaded with the same reading time");
    const path = join(ARTIFACTS, "admin-queues.png");
    await page.screenshot({ path, fullPage: true });
    console.log(`     screenshot ${path}`);
    // Leave the self-reloading page before the next step clicks anything.
    await page.goto(`${BASE}/admin/`);
  });

  await step("the administrator logs out", async () => {
    await Promise.all([page.waitForURL(`${BASE}/admin/login`), page.click('form[action="/admin/logout"] button')]);
    await page.goto(`${BASE}/admin/`);
    check(page.url() === `${BASE}/admin/login`, `still signed in: ${page.url()}`);
  });

  const userContext = await browser.newContext();
  const userPage = await userContext.newPage();
  userPage.setDefaultTimeout(15_000);
  await step(
    "a user who is not an administrator is refused",
    async () => {
      const response = await login(userPage, USER);
      check(response.status() === 403, `POST /admin/login answered ${response.status()}`);
      check(/not an administrator/.test(await userPage.textContent("main")), "no 'not an administrator' message");
      const cookie = (await userContext.cookies(`${BASE}/admin/`)).find((c) => c.name === "ferry_admin" && c.value);
      check(!cookie, "a session cookie was set");
      await userPage.goto(`${BASE}/admin/users`);
      check(userPage.url() === `${BASE}/admin/login`, `reached ${userPage.url()}`);
      // Even holding a valid token of their own as the session cookie, every page
      // re-checks is_admin in the database.
      const tokenResponse = await userPage.request.post(`${BASE}/api-token-auth/`, { form: USER });
      check(tokenResponse.ok(), `token for ${USER.username}: ${tokenResponse.status()}`);
      const { token } = await tokenResponse.json();
      const { hostname } = new URL(BASE);
      const session = [{ name: "ferry_admin", value: token, domain: hostname, path: "/admin" }];
      await userContext.addCookies(session);
      const json = await userPage.request.get(`${BASE}/admin/nodes.json`, { maxRedirects: 0 });
      check(json.status() === 403, `with a non-admin session nodes.json answered ${json.status()}`);
      // Each refusal clears the cookie: set it again.
      await userContext.addCookies(session);
      const refused = await userPage.goto(`${BASE}/admin/`);
      check(refused.status() === 403, `with a non-admin session /admin/ answered ${refused.status()}`);
      check(/not an administrator/.test(await userPage.textContent("main")), "no 'not an administrator' message");
      const left = (await userContext.cookies(`${BASE}/admin/`)).find((c) => c.name === "ferry_admin" && c.value);
      check(!left, "the non-admin session cookie was kept");
    },
    userPage,
  );
  await userContext.close();

  // The API docs render from this origin alone: the Redoc bundle is served by ferry-api
  // and the page's Content-Security-Policy keeps anything else (a CDN logo) from loading.
  const docsContext = await browser.newContext();
  const docsPage = await docsContext.newPage();
  docsPage.setDefaultTimeout(15_000);
  await step(
    "the API docs (Redoc and Swagger UI) render with no request leaving the origin",
    async () => {
      // Every request for another origin counts, unless the page's own CSP stopped it
      // before it left (Chromium reports those as failed with ERR_BLOCKED_BY_CSP).
      const outside = new Set();
      const foreign = (url) => !url.startsWith(`${BASE}/`) && !url.startsWith("data:") && !url.startsWith("blob:");
      docsPage.on("request", (request) => {
        if (foreign(request.url())) outside.add(request.url());
      });
      docsPage.on("requestfailed", (request) => {
        if (/BLOCKED_BY_CSP/.test(request.failure()?.errorText ?? "")) outside.delete(request.url());
      });
      const response = await docsPage.goto(`${BASE}/docs/redoc/`);
      check(response.ok(), `/docs/redoc/ answered ${response.status()}`);
      check(/default-src 'self'/.test(response.headers()["content-security-policy"] ?? ""), "no CSP on the docs page");
      await docsPage.waitForSelector("text=Uploading in chunks");
      await docsPage.waitForLoadState("networkidle");
      // Swagger UI too (the original's /docs/swagger/), with its operations listed.
      const swagger = await docsPage.goto(`${BASE}/docs/swagger/`);
      check(swagger.ok(), `/docs/swagger/ answered ${swagger.status()}`);
      await docsPage.waitForSelector("text=Complete the upload with its md5", { state: "attached" });
      await docsPage.waitForLoadState("networkidle");
      check(outside.size === 0, `requests left the origin: ${[...outside].join(", ")}`);
    },
    docsPage,
  );
  await docsContext.close();
} finally {
  await browser.close();
}

console.log(`admin browser test: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);

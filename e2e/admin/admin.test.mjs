// Browser test of the admin page (/admin/) in Debian's headless Chromium, driven by
// playwright-core: log in, add a node and watch it turn up with its free space (live,
// without a reload), drain it, check the CSRF guard, visit every page (the jobs page
// with each job's worker and an upload's timeline, the workers with their queues), log
// out, and see a non-administrator refused. Screenshots go to $FERRY_E2E_ARTIFACTS.
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
    await Promise.all([page.waitForURL(/\/admin\/jobs\?upload=/), done.first().locator("td a").first().click()]);
    const kinds = await page.locator("#jobs tbody tr td:nth-child(3)").allTextContents();
    check(kinds.length > 0 && kinds.every((k) => /^(assemble|replicate|verify|delete|drop_replica)$/.test(k)), `kinds ${kinds}`);
    const bad = await page.request.get(`${BASE}/admin/jobs?state=running`);
    check(bad.status() === 400, `an unknown state filter answered ${bad.status()}`);
    const path = join(ARTIFACTS, "admin-jobs.png");
    await page.screenshot({ path, fullPage: true });
    console.log(`     ${kinds.length} job(s) in the upload's timeline (${kinds.join(", ")}); screenshot ${path}`);
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

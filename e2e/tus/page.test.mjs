// Browser test of the page for people at `/` in Debian's headless Chromium, driven by
// playwright-core: log in, add a 200 MiB file to Uppy's Dashboard and upload it over
// tus, pause it (no PATCH while paused) and resume it, reload the page mid-way, add the file again (Uppy's Golden Retriever restored the
// session but not 200 MiB of bytes) and see the upload resume from the server's offset, finish, see the file listed, download it through the
// signed link and compare it byte for byte, delete it. Screenshots of each stage go to
// $FERRY_E2E_ARTIFACTS.
//
// Environment: BASE (the API), E2E_USER, E2E_PASSWORD, FERRY_E2E_ARTIFACTS.
// Prints `page browser test: N passed, M failed` last; exits non-zero on any failure.

import { createHash, randomBytes } from "node:crypto";
import { createReadStream, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const BASE = (process.env.BASE ?? "http://127.0.0.1:8000").replace(/\/+$/, "");
const USER = process.env.E2E_USER;
const PASSWORD = process.env.E2E_PASSWORD;
const ARTIFACTS = process.env.FERRY_E2E_ARTIFACTS ?? join(process.cwd(), "artifacts");
mkdirSync(ARTIFACTS, { recursive: true });
const SIZE = 200 * 1024 * 1024;
const RELOAD_AFTER = 40 * 1024 * 1024;

const LAUNCH = {
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"],
};

function check(condition, message) {
  if (!condition) throw new Error(message);
}

async function sha256(path) {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk);
  return hash.digest("hex");
}

const work = mkdtempSync(join(tmpdir(), "ferry-page-"));
const file = join(work, "big-200MiB.bin");
{
  const data = randomBytes(SIZE);
  writeFileSync(file, data);
}
const expected = await sha256(file);

let passed = 0;
let failed = 0;
let stopped = false;
const browser = await chromium.launch(LAUNCH);
const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
const page = await context.newPage();
page.setDefaultTimeout(30_000);
// Every tus PATCH the page sends: its Upload-Offset, and the status it got.
const patches = [];
page.on("response", (r) => {
  const req = r.request();
  if (req.method() === "PATCH" && req.url().includes("/files/")) {
    patches.push({ offset: Number(req.headers()["upload-offset"]), status: r.status() });
  }
});

async function step(name, body) {
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
    stopped = true;
    console.log(`FAIL ${name}: ${error.message}`);
    await page.screenshot({ path: join(ARTIFACTS, `page-failure-${passed + failed}.png`), fullPage: true }).catch(() => {});
  }
}

const shot = (name) => page.screenshot({ path: join(ARTIFACTS, `page-${name}.png`), fullPage: true });
const uploadButton = ".uppy-StatusBar-actionBtn--upload";
// Uppy's Dashboard has a file input and a folder input (webkitdirectory).
const fileInput = "input.uppy-Dashboard-input:not([webkitdirectory])";
const fileRow = () => page.locator("#files tbody tr", { hasText: "big-200MiB.bin" });

try {
  await step("the page asks for a login, and a login shows the uploader", async () => {
    const response = await page.goto(`${BASE}/`);
    check(response.status() === 200, `GET / answered ${response.status()}`);
    check(response.headers()["content-security-policy"]?.includes("default-src 'self'"), "no CSP");
    await page.waitForSelector("#login:not([hidden])");
    await shot("1-login");
    await page.fill('#login input[name="username"]', USER);
    await page.fill('#login input[name="password"]', PASSWORD);
    await page.click('#login button[type="submit"]');
    await page.waitForSelector("#app:not([hidden])");
    await page.waitForSelector(".uppy-Dashboard");
  });

  await step("a 200 MiB file uploads over tus with progress, pauses and resumes", async () => {
    await page.setInputFiles(fileInput, file);
    await page.click(uploadButton);
    await page.waitForFunction(() => document.querySelector(".uppy-StatusBar-progress") !== null);
    const toggle = page.locator('button[data-cy="togglePauseResume"]');
    await toggle.click();
    await page.waitForSelector('button[data-cy="togglePauseResume"][title="Resume"]');
    await page.waitForTimeout(500);
    const paused = patches.length;
    await page.waitForTimeout(1500);
    check(patches.length === paused, `${patches.length - paused} PATCHes answered while paused`);
    await shot("2-paused");
    await toggle.click();
    await page.waitForSelector('button[data-cy="togglePauseResume"][title="Pause"]');
  });

  await step("the upload goes on until the page is reloaded", async () => {
    const deadline = Date.now() + 120_000;
    while (patches.filter((p) => p.status === 204).length * 8 * 1024 * 1024 < RELOAD_AFTER) {
      check(Date.now() < deadline, `only ${patches.length} PATCHes in 120 s`);
      await page.waitForTimeout(100);
    }
    await shot("3-uploading");
    await page.reload();
    await page.waitForSelector("#app:not([hidden])");
  });

  await step("after the reload the same file resumes from the server's offset and completes", async () => {
    const before = patches.length;
    const reached = Math.max(...patches.filter((p) => p.status === 204).map((p) => p.offset)) + 8 * 1024 * 1024;
    await page.waitForSelector(".uppy-Dashboard");
    // Uppy restored the session with the file as a "ghost" (its bytes are not kept):
    // the Dashboard asks for it again, through "Add more".
    if ((await page.locator(fileInput).count()) === 0) await page.click(".uppy-DashboardContent-addMore");
    await page.setInputFiles(fileInput, file);
    // Uppy may resume on its own once the file is back; else the upload button starts it.
    for (let i = 0; i < 100 && patches.length === before; i += 1) {
      const start = page.locator(uploadButton);
      if (await start.count()) {
        await start.first().click();
        break;
      }
      await page.waitForTimeout(100);
    }
    await fileRow().first().waitFor({ timeout: 240_000 });
    const after = patches.slice(before);
    check(after.length > 0, "no PATCH after the reload");
    check(after[0].offset >= reached - 8 * 1024 * 1024 && after[0].offset > 0,
      `the first PATCH after the reload started at ${after[0].offset}, not near ${reached}`);
    await shot("4-complete");
  });

  await step("the file is listed and downloads byte-identical through a signed link", async () => {
    const [download] = await Promise.all([
      page.waitForEvent("download", { timeout: 120_000 }),
      fileRow().first().locator("button", { hasText: "Download" }).click(),
    ]);
    check(download.suggestedFilename() === "big-200MiB.bin", `saved as ${download.suggestedFilename()}`);
    check(!download.url().includes("token") && download.url().includes("sig="), `link ${download.url()}`);
    const saved = join(work, "downloaded.bin");
    await download.saveAs(saved);
    check((await sha256(saved)) === expected, "downloaded bytes differ");
  });

  await step("the file is deleted from the page", async () => {
    page.once("dialog", (dialog) => dialog.accept());
    await fileRow().first().locator("button", { hasText: "Delete" }).click();
    await page.waitForFunction(() => ![...document.querySelectorAll("#files tbody tr")]
      .some((tr) => tr.textContent.includes("big-200MiB.bin")));
    await shot("5-deleted");
  });
} finally {
  await browser.close();
  rmSync(work, { recursive: true, force: true });
}
console.log(`page browser test: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);

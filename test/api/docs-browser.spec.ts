// /docs in a real browser: Debian's headless Chromium, driven by playwright-core, opens the reference UI,
// fills the bearer token, sends POST /v1/zones with try-it-out and sees 201. Saves a screenshot.
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type BrowserContext } from "playwright-core";
import { startCluster, type Cluster } from "../helpers/cluster";

/** .ci/run installs Debian's `chromium` when it is missing. */
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const SCREENSHOT = join(__dirname, "../../.local/screenshots/docs-try-it-out.png");

let c: Cluster;
let browser: BrowserContext | undefined;
let profile: string;

beforeAll(async () => {
  c = await startCluster({ processes: ["zones"] });
  profile = mkdtempSync(join(tmpdir(), "caracal-chromium-"));
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"],
    viewport: { width: 1280, height: 1000 },
  });
}, 60_000);
afterAll(async () => {
  await browser?.close();
  rmSync(profile, { recursive: true, force: true });
  await c?.stop();
});

test("the reference UI sends POST /v1/zones with the token filled in and shows 201", async () => {
  const page = await browser!.newPage();
  const failures: string[] = [];
  page.on("pageerror", (err) => failures.push(err.message));
  await page.goto(`${c.url}/docs`);
  await page.waitForSelector(".swagger-ui .info .title", { timeout: 20_000 });
  expect(await page.locator(".swagger-ui .info .title").innerText()).toContain("Caracal control plane API");

  // Authorize: the bearer scheme's dialog.
  await page.locator(".scheme-container button.authorize").click();
  await page.locator(".auth-container input").first().fill(c.adminToken);
  await page.locator(".auth-btn-wrapper button.authorize").click();
  await page.locator(".auth-btn-wrapper button.btn-done").click();

  // POST /v1/zones: open it, put a body in the (try-it-out) editor, execute.
  const op = page.locator("#operations-zones-zones_create");
  await op.locator(".opblock-summary").click();
  await op.locator("textarea.body-param__text").fill(JSON.stringify({ name: "Zone from the browser" }));
  await op.locator("button.execute").click();
  const status = op.locator(".live-responses-table .response .response-col_status").first();
  await status.waitFor({ timeout: 20_000 });
  await status.scrollIntoViewIfNeeded();
  mkdirSync(join(SCREENSHOT, ".."), { recursive: true });
  await page.screenshot({ path: SCREENSHOT, fullPage: false });
  console.log(`docs screenshot: ${SCREENSHOT}`);
  expect((await status.innerText()).trim()).toBe("201");
  expect(await op.locator(".live-responses-table .response .response-col_description").first().innerText()).toContain("Zone from the browser");

  // The zone really is there, created by the page's request.
  const list = await c.http().get("/v1/zones").set(c.auth());
  expect(list.body.items.map((z: { name: string }) => z.name)).toContain("Zone from the browser");
  expect(failures).toEqual([]);
}, 60_000);

// Opens the built book in a real browser (Debian's headless Chromium, driven by playwright-core) and
// checks what a reader does first: the quick start page renders with its first command, and the
// search box finds the quick start. Saves a screenshot of the search results for CI.
//
//   node check.mjs BOOK_HTML_DIR SCREENSHOT_DIR
//
// The book is served from 127.0.0.1 by this script (search loads its index with a request, as it
// would from a real web server). Every wait has a deadline; nothing sleeps.
import { chromium } from "playwright-core";
import { createServer } from "node:http";
import { readFile, mkdir, mkdtemp, rm } from "node:fs/promises";
import { join, normalize, extname } from "node:path";
import { tmpdir } from "node:os";

const [bookDir, shotDir] = process.argv.slice(2);
if (!bookDir || !shotDir) {
  console.error("usage: node check.mjs BOOK_HTML_DIR SCREENSHOT_DIR");
  process.exit(2);
}
const TIMEOUT = 30_000;
const TYPES = {
  ".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".json": "application/json",
  ".svg": "image/svg+xml", ".png": "image/png", ".woff2": "font/woff2", ".woff": "font/woff",
  ".ttf": "font/ttf", ".ico": "image/x-icon",
};

const server = createServer(async (req, res) => {
  const path = normalize(decodeURIComponent(new URL(req.url, "http://x").pathname)).replace(/^(\.\.[/\\])+/, "");
  const file = join(bookDir, path.endsWith("/") ? path + "index.html" : path);
  try {
    const body = await readFile(file);
    res.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream" });
    res.end(body);
  } catch {
    res.writeHead(404);
    res.end();
  }
});
await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
const base = `http://127.0.0.1:${server.address().port}`;
await mkdir(shotDir, { recursive: true });

const profile = await mkdtemp(join(tmpdir(), "poppet-book-chromium-"));
// A new, empty profile directory (Playwright passes it as --user-data-dir).
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  timeout: TIMEOUT,
  viewport: { width: 1280, height: 900 },
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
let failed = false;
try {
  const page = browser.pages()[0] ?? (await browser.newPage());
  page.setDefaultTimeout(TIMEOUT);
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));

  await page.goto(`${base}/quickstart.html`);
  const h1 = (await page.locator("main h1").first().textContent()).trim();
  if (h1 !== "Quick start") throw new Error(`quick start heading is ${JSON.stringify(h1)}`);
  const firstCommand = await page.locator("main pre code").first().textContent();
  if (!firstCommand.includes("./target/debug/poppet --config examples/quickstart.ron")) {
    throw new Error(`the first command is not the quick start's: ${firstCommand}`);
  }
  await page.screenshot({ path: join(shotDir, "quickstart.png") });

  // Search as a reader does: the "s" key opens the search bar, then type.
  await page.keyboard.press("s");
  const bar = page.locator("input[type=search]").first();
  await bar.waitFor({ state: "visible" });
  // mdBook searches on key events, so type as a person does rather than setting the value.
  await bar.pressSequentially("thunderbird");
  const hit = page.locator("ul[id$=searchresults] li a[href*='quickstart.html']").first();
  await hit.waitFor({ state: "visible" });
  const results = await page.locator("ul[id$=searchresults] li").count();
  await page.screenshot({ path: join(shotDir, "search.png") });
  if (errors.length) throw new Error(`JavaScript errors: ${errors.join("; ")}`);
  console.log(`browser check: quick start renders; search for "thunderbird" gives ${results} results, quickstart.html among them`);
} catch (e) {
  failed = true;
  console.error(`browser check FAILED: ${e.message}`);
} finally {
  await browser.close();
  server.close();
  await rm(profile, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);

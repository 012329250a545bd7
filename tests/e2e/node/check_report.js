// Check a MapScribe HTML report in headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core, which downloads no browser): axe-core's rules, then a keyboard-only run.
//
//   node check_report.js REPORT.html [CHROMIUM]
//
// Prints one JSON object: {axe: {violations, passes, incomplete}, axeAfterSearch, keyboard,
// noScript}. tests/e2e/test_report_accessibility.py runs it and checks what it says.
"use strict";

const path = require("path");
const { pathToFileURL } = require("url");
const { chromium } = require("playwright-core");

const AXE = require.resolve("axe-core/axe.min.js");
// Chromium as the machine's probe ran it: no sandbox (root in a container), no GPU, nothing
// that reaches the network. Playwright gives it a new empty profile (--user-data-dir) itself.
const ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];

async function axeRun(page) {
  await page.addScriptTag({ path: AXE });
  const results = await page.evaluate(() => window.axe.run(document));
  const brief = (items) => items.map((rule) => ({
    id: rule.id, impact: rule.impact, help: rule.help,
    nodes: rule.nodes.slice(0, 5).map((node) => ({ target: node.target, html: node.html,
      summary: node.failureSummary })),
  }));
  return { violations: brief(results.violations), passes: results.passes.length,
    incomplete: results.incomplete.map((rule) => rule.id) };
}

async function active(page) {
  return page.evaluate(() => {
    const element = document.activeElement;
    return element ? { tag: element.tagName.toLowerCase(), id: element.id || "",
      href: element.getAttribute("href") || "", text: (element.textContent || "").trim() }
      : null;
  });
}

async function keyboardRun(page) {
  const links = await page.$$eval("a[href]", (items) => items.map((a) => a.getAttribute("href")));
  const visited = [];
  // Tab from the top through every focusable element, and a few more (it wraps round).
  for (let i = 0; i < links.length + 10; i += 1) {
    await page.keyboard.press("Tab");
    visited.push(await active(page));
  }
  const reached = visited.filter((item) => item && item.href).map((item) => item.href);
  const searchAt = visited.findIndex((item) => item && item.id === "search");
  const firstRegionAt = visited.findIndex((item) => item && /^#region-/.test(item.href));

  // Enter on the first region link (reached by Tab alone) moves focus to its tiles.
  await page.reload();
  let enter = null;
  for (let i = 0; i < links.length + 10; i += 1) {
    await page.keyboard.press("Tab");
    const now = await active(page);
    if (now && /^#region-/.test(now.href)) {
      await page.keyboard.press("Enter");
      await page.waitForTimeout(200);
      const target = await active(page);
      await page.keyboard.press("Tab");
      const next = await active(page);
      enter = { link: now.href, focused: target, nextTab: next };
      break;
    }
  }

  // Typing into the search field filters the lists and says how many match.
  await page.reload();
  let search = null;
  for (let i = 0; i < links.length + 10; i += 1) {
    await page.keyboard.press("Tab");
    const now = await active(page);
    if (now && now.id === "search") {
      const word = process.env.MAPSCRIBE_SEARCH_WORD || "the";
      await page.keyboard.type(word);
      await page.waitForTimeout(200);
      search = await page.evaluate(() => ({
        status: document.getElementById("search-status").textContent,
        tiles: document.querySelectorAll("li[data-tile]").length,
        shown: document.querySelectorAll("li[data-tile]:not([hidden])").length,
        shownTexts: Array.from(document.querySelectorAll("li[data-tile]:not([hidden])"))
          .map((li) => li.textContent),
      }));
      search.word = word;
      break;
    }
  }
  return { links, visited, reached, searchAt, firstRegionAt, enter, search };
}

async function main() {
  const report = process.argv[2];
  const executablePath = process.argv[3] || "/usr/bin/chromium";
  const browser = await chromium.launch({ executablePath, args: ARGS });
  const url = pathToFileURL(path.resolve(report)).href;
  const out = {};
  try {
    const page = await browser.newPage();
    await page.goto(url);
    out.axe = await axeRun(page);
    out.keyboard = await keyboardRun(page);
    // The page as the search left it (items hidden, a status) passes axe too.
    out.axeAfterSearch = await axeRun(page);

    const plain = await browser.newContext({ javaScriptEnabled: false });
    const noScript = await plain.newPage();
    await noScript.goto(url);
    out.noScript = {
      searchVisible: await noScript.locator("#search-form").isVisible(),
      tilesVisible: await noScript.locator("li[data-tile]").first().isVisible(),
      tiles: await noScript.locator("li[data-tile]").count(),
    };
    await plain.close();
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify(out));
}

main().catch((error) => {
  process.stderr.write(`check_report.js: ${error && error.stack ? error.stack : error}\n`);
  process.exit(1);
});

// Every dashboard page at desk and phone width in headless Chromium
// (issue 14): a full-page screenshot of each, a check that the page does
// not scroll sideways, and an axe-core accessibility audit.
//
//   node pages.mjs <base-url> <artifacts-dir>
//   env: E2E_USER, E2E_PASSWORD, E2E_PAGES (JSON: [[name, path], ...]),
//        TASKHARBOR_E2E_NODE_DIR
//
// Prints "RESULT {json}" with, per page and width, the overflow in pixels
// and the serious/critical axe violations; exits non-zero if any.
import { createRequire } from 'node:module';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { homedir } from 'node:os';

const [base, artifacts] = process.argv.slice(2);
const nodeDir = process.env.TASKHARBOR_E2E_NODE_DIR
  || join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'taskharbor', 'node');
const require = createRequire(join(nodeDir, 'package.json'));
const { chromium } = require('playwright-core');
const axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const pages = JSON.parse(process.env.E2E_PAGES || '[]');
mkdirSync(artifacts, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const results = [];
let faviconServed = false;
const narrow = [];
const consoleErrors = [];
let failure = null;
try {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
  await page.goto(`${base}/login`);
  await page.getByLabel('Username').fill(process.env.E2E_USER);
  await page.getByLabel('Password').fill(process.env.E2E_PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(`${base}/boards`);

  // The favicon the pages link must really be served, as an SVG.
  const icon = await page.evaluate(() => document.querySelector('link[rel="icon"]')?.getAttribute('href'));
  const iconResponse = icon ? await page.request.get(base + icon) : null;
  faviconServed = Boolean(iconResponse && iconResponse.status() === 200
    && /image\/svg\+xml/.test(iconResponse.headers()['content-type'] || ''));
  if (!faviconServed) throw new Error(`favicon ${icon} is not served as image/svg+xml`);

  for (const width of [1400, 390]) {
    await page.setViewportSize({ width, height: width > 800 ? 900 : 844 });
    for (const [name, path] of pages) {
      const response = await page.goto(base + path, { waitUntil: 'load' });
      // Let the board's live connection and the webhooks list settle.
      await page.waitForTimeout(300);
      // Open the first disclosure menu (a card's or a user's) so the
      // screenshot and the audit include it.
      const menu = page.locator('details.card-menu summary, details.user-menu summary').first();
      if (await menu.count()) await menu.click();
      const status = response ? response.status() : 0;
      const shot = join(artifacts, `${name}-${width}.png`);
      await page.screenshot({ path: shot, fullPage: true });
      const overflow = await page.evaluate(() =>
        Math.max(0, document.documentElement.scrollWidth - document.documentElement.clientWidth));
      // Name the widest offenders, so a failure says what to fix.
      const offenders = overflow === 0 ? [] : await page.evaluate(() => {
        const limit = document.documentElement.clientWidth;
        return Array.from(document.querySelectorAll('body *'))
          .filter((el) => el.getBoundingClientRect().right > limit + 1)
          .slice(-5)
          .map((el) => `${el.tagName.toLowerCase()}.${el.className} right=${Math.round(el.getBoundingClientRect().right)}`);
      });
      await page.evaluate(axeSource);
      const violations = await page.evaluate(async () => {
        const r = await window.axe.run(document, { resultTypes: ['violations'] });
        return r.violations
          .filter((v) => v.impact === 'serious' || v.impact === 'critical')
          .map((v) => ({ id: v.id, impact: v.impact, help: v.help,
            targets: v.nodes.slice(0, 5).map((n) => n.target.join(' ')) }));
      });
      const favicon = await page.evaluate(() => {
        const link = document.querySelector('link[rel="icon"]');
        return link ? link.getAttribute('href') : null;
      });
      results.push({ name, width, status, overflow, offenders, violations, favicon, shot });
      console.log(`page ${name} @${width}: status ${status}, overflow ${overflow}px, ${violations.length} serious/critical`);
    }
  }
  // The narrowest phone the issue names: no page may scroll sideways.
  await page.setViewportSize({ width: 360, height: 740 });
  for (const [name, path] of pages) {
    await page.goto(base + path, { waitUntil: 'load' });
    await page.waitForTimeout(300);
    const overflow = await page.evaluate(() =>
      Math.max(0, document.documentElement.scrollWidth - document.documentElement.clientWidth));
    const offenders = overflow === 0 ? [] : await page.evaluate(() => {
      const limit = document.documentElement.clientWidth;
      return Array.from(document.querySelectorAll('body *'))
        .filter((el) => el.getBoundingClientRect().right > limit + 1)
        .slice(-5)
        .map((el) => `${el.tagName.toLowerCase()}.${el.className} right=${Math.round(el.getBoundingClientRect().right)}`);
    });
    if (overflow) await page.screenshot({ path: join(artifacts, `${name}-360.png`), fullPage: true });
    narrow.push({ name, width: 360, overflow, offenders });
    console.log(`page ${name} @360: overflow ${overflow}px`);
  }
} catch (e) {
  failure = String(e && e.message ? e.message : e);
  console.error(`failed: ${failure}`);
} finally {
  const ok = !failure && !consoleErrors.length && faviconServed
    && results.every((r) => r.status === 200 && r.overflow === 0 && r.violations.length === 0 && r.favicon)
    && narrow.length === pages.length && narrow.every((r) => r.overflow === 0);
  console.log('RESULT ' + JSON.stringify({ ok, failure, consoleErrors, faviconServed, narrow, results }));
  await browser.close();
  process.exit(ok ? 0 : 1);
}

// The board settings' sync panel in headless Chromium (playwright-core over
// Debian's /usr/bin/chromium): link a board to the GitHub stand-in from the
// form, see its state, pause (pending grows, nothing is sent), resume (it
// drains), rotate the webhook secret, unlink. axe-core checks the panel.
//
//   node sync_panel.mjs <base-url> <board-id> <artifacts-dir>
//   env: E2E_USER, E2E_PASSWORD, E2E_API_URL, E2E_REPO, E2E_TOKEN, TASKHARBOR_E2E_NODE_DIR
//
// Protocol with the Rust test (tests/api/sync/panel.rs): prints LINKED,
// PAUSED and RESUMED and waits for a line on stdin after each (the test
// makes board changes and checks the stand-in meanwhile); prints
// "RESULT {json}" at the end and exits non-zero on failure.
import { createRequire } from 'node:module';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { homedir } from 'node:os';
import { createInterface } from 'node:readline';

const [base, boardId, artifacts] = process.argv.slice(2);
const nodeDir = process.env.TASKHARBOR_E2E_NODE_DIR
  || join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'taskharbor', 'node');
const require = createRequire(join(nodeDir, 'package.json'));
const { chromium } = require('playwright-core');
const axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
mkdirSync(artifacts, { recursive: true });

const steps = [];
const stdinLines = createInterface({ input: process.stdin });
const nextLine = () => new Promise((resolve) => stdinLines.once('line', resolve));
async function checkpoint(name) {
  console.log(name);
  const answer = await nextLine();
  if (answer !== 'ok') throw new Error(`${name}: the test said ${answer}`);
}
function step(name) { steps.push(name); console.log('step: ' + name); }

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
const page = await context.newPage();
page.setDefaultTimeout(15000);
const consoleErrors = [];
page.on('console', (m) => { if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) consoleErrors.push(m.text()); });
page.on('pageerror', (e) => consoleErrors.push(String(e)));
const dialogs = [];
page.on('dialog', (d) => { dialogs.push(d.message()); d.accept(); });

const panel = page.locator('#sync');
const settings = `${base}/boards/${boardId}/settings`;
const text = async (sel) => (await panel.locator(sel).textContent() || '').trim();
const violations = [];
async function audit(label) {
  await page.evaluate(axeSource);
  const found = await page.evaluate(async () => {
    const r = await window.axe.run('#sync', { resultTypes: ['violations'] });
    return r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => `${v.id}: ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')}`);
  });
  for (const v of found) violations.push(`${label}: ${v}`);
}

let ok = false;
let failure = null;
try {
  step('sign in');
  await page.goto(`${base}/login`);
  await page.getByLabel('Username').fill(process.env.E2E_USER);
  await page.getByLabel('Password').fill(process.env.E2E_PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(`${base}/boards`);

  step('the settings page offers the link form; the token is a password field');
  await page.goto(settings);
  const form = panel.getByRole('form', { name: 'Link a repository' });
  await form.waitFor();
  if (await form.getByLabel('Token', { exact: true }).getAttribute('type') !== 'password') throw new Error('token is not a password field');
  await audit('unlinked');

  step('a wrong token is refused with the API\'s message, nothing linked');
  await form.getByLabel('Provider').selectOption('github');
  await form.getByLabel('Repository').fill(process.env.E2E_REPO);
  await form.getByLabel('API URL').fill(process.env.E2E_API_URL);
  await form.getByLabel('Token', { exact: true }).fill('wrong-token');
  await form.getByLabel('Import existing issues').selectOption('none');
  await form.getByRole('button', { name: 'Link repository' }).click();
  await form.locator('.msg.error-text').waitFor();
  const refused = await form.locator('.msg').textContent();
  if (!/token/i.test(refused)) throw new Error(`refusal does not name the token: ${refused}`);

  step('link with the right token: webhook URL and secret shown once');
  await form.getByLabel('Token', { exact: true }).fill(process.env.E2E_TOKEN);
  await form.getByRole('button', { name: 'Link repository' }).click();
  const box = panel.locator('.secret');
  await box.waitFor({ state: 'visible' });
  const firstSecret = (await box.locator('.secret-value').textContent()).trim();
  const hookUrl = (await box.locator('.sync-webhook-url').textContent()).trim();
  if (!firstSecret.startsWith('whsec_')) throw new Error(`no secret shown: ${firstSecret}`);
  if (!hookUrl.endsWith(`/hooks/github/${boardId}`)) throw new Error(`webhook URL: ${hookUrl}`);
  await page.screenshot({ path: join(artifacts, 'sync-linked.png'), fullPage: true });
  await checkpoint('LINKED');

  step('the state shows the push');
  await panel.getByRole('link', { name: 'Show the link\'s state' }).click();
  await panel.locator('[data-sync-state]').waitFor();
  if (await text('[data-sync-state]') !== 'ok') throw new Error(`state: ${await text('[data-sync-state]')}`);
  if (await text('[data-sync-pending]') !== '0') throw new Error(`pending: ${await text('[data-sync-pending]')}`);
  if (/never/.test(await panel.locator('dd').nth(4).textContent())) throw new Error('no last push shown');
  if ((await page.content()).includes(firstSecret)) throw new Error('the secret is shown again');
  await audit('linked');

  step('pause');
  await panel.getByRole('button', { name: 'Pause sync' }).click();
  await panel.getByRole('button', { name: 'Resume sync' }).waitFor();
  if (await text('[data-sync-state]') !== 'off (paused)') throw new Error(`paused state: ${await text('[data-sync-state]')}`);
  await checkpoint('PAUSED');

  step('while paused, pending grows');
  await page.reload();
  const pending = parseInt(await text('[data-sync-pending]'), 10);
  if (!(pending >= 3)) throw new Error(`pending while paused: ${pending}`);
  await page.screenshot({ path: join(artifacts, 'sync-paused.png'), fullPage: true });

  step('resume: it drains');
  await panel.getByRole('button', { name: 'Resume sync' }).click();
  await panel.getByRole('button', { name: 'Pause sync' }).waitFor();
  await checkpoint('RESUMED');
  // The reconciler's first poll after resuming may queue items for a
  // moment (each merge re-checks its item); the panel settles at 0.
  for (let tries = 0; ; tries++) {
    await page.reload();
    if (await text('[data-sync-pending]') === '0') break;
    if (tries >= 20) throw new Error(`pending after resume: ${await text('[data-sync-pending]')}`);
    await page.waitForTimeout(250);
  }
  if (await text('[data-sync-state]') !== 'ok') throw new Error(`state after resume: ${await text('[data-sync-state]')}`);

  step('rotate the webhook secret: a new one, shown once');
  await panel.getByRole('button', { name: 'Rotate webhook secret' }).click();
  await box.waitFor({ state: 'visible' });
  const rotated = (await box.locator('.secret-value').textContent()).trim();
  if (!rotated.startsWith('whsec_') || rotated === firstSecret) throw new Error(`rotated secret: ${rotated}`);
  await audit('rotated');

  step('unlink, after a confirmation');
  await panel.getByRole('button', { name: 'Unlink (items stay)' }).click();
  await panel.getByRole('form', { name: 'Link a repository' }).waitFor();
  if (!dialogs.some((d) => /Unlink .*Items stay/.test(d))) throw new Error(`no confirmation asked: ${dialogs.join(' | ')}`);
  await page.screenshot({ path: join(artifacts, 'sync-unlinked.png'), fullPage: true });
  ok = consoleErrors.length === 0 && violations.length === 0;
  if (!ok) failure = 'console errors or axe violations';
} catch (e) {
  failure = String(e && e.message ? e.message : e);
  console.error(`failed: ${failure}`);
  await page.screenshot({ path: join(artifacts, 'sync-failure.png'), fullPage: true }).catch(() => {});
} finally {
  console.log('RESULT ' + JSON.stringify({ ok, steps, failure, consoleErrors, violations, dialogs }));
  await browser.close();
  stdinLines.close();
  process.exit(ok ? 0 : 1);
}

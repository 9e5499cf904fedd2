// approve.mjs sends a signal to a running workflow the way a person does: through
// the Temporal Web UI's own "Send a Signal" dialog, in Debian's chromium driven by
// playwright-core. integration/ui_approve_test.go runs it to approve a promotion
// paused at its gate; it works for any workflow that registers the signal.
//
//   node integration/ui/approve.mjs --playwright DIR --ui http://127.0.0.1:8233 \
//     --namespace NS --workflow-id ID --approver NAME --reason TEXT [--signal approve] \
//     [--filter 'ConveyorStage="gate"'] [--expect TEXT ...] [--chromium /usr/bin/chromium] [--artifacts DIR] [--timeout 90]
//
// DIR is where tools/playwright.sh installed playwright-core (it prints it). The
// script finds the workflow in the namespace's workflow list (the list's query:
// its WorkflowId, ExecutionStatus "Running", and --filter if given), opens it, waits
// for each --expect text on its page (what its current details say), picks the signal from the list
// of signal definitions the workflow registered, types {"approver", "reason"}
// into the JSON editor, submits, and waits for the UI's "Workflow signaled."
// toast and the "Workflow Execution Signaled" history row. On failure it saves a
// screenshot and the page's HTML under --artifacts (a new temporary directory by
// default) and says which step failed. Its last line on stdout is a JSON summary:
// wall time, and the peak resident memory of chromium's processes plus node.
import { createRequire } from 'node:module';
import { mkdtempSync, mkdirSync, readdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const started = Date.now();
const usage = 'usage: node approve.mjs --playwright DIR --ui URL --namespace NS --workflow-id ID --approver NAME --reason TEXT [--signal approve] [--filter QUERY] [--expect TEXT ...] [--chromium PATH] [--artifacts DIR] [--timeout SECONDS]';

function fail(msg) {
  console.error(`approve.mjs: ${msg}`);
  process.exit(2);
}

let opts;
try {
  opts = parseArgs({
    options: {
      playwright: { type: 'string' },
      ui: { type: 'string' },
      namespace: { type: 'string' },
      'workflow-id': { type: 'string' },
      signal: { type: 'string', default: 'approve' },
      filter: { type: 'string', default: '' },
      approver: { type: 'string' },
      reason: { type: 'string', default: '' },
      chromium: { type: 'string', default: '/usr/bin/chromium' },
      artifacts: { type: 'string' },
      timeout: { type: 'string', default: '90' },
      expect: { type: 'string', multiple: true, default: [] },
    },
  }).values;
} catch (e) {
  fail(`${e.message}\n${usage}`);
}
for (const name of ['playwright', 'ui', 'namespace', 'workflow-id', 'approver']) {
  if (!opts[name]) fail(`--${name} is missing\n${usage}`);
}
const pwPackage = join(opts.playwright, 'node_modules', 'playwright-core', 'package.json');
if (!existsSync(pwPackage)) {
  fail(`playwright-core is not installed in ${opts.playwright}: run tools/playwright.sh, which installs it and prints the directory`);
}
if (!existsSync(opts.chromium)) {
  fail(`no browser at ${opts.chromium}: \`make deps\` (tools/deps.sh) installs Debian's chromium`);
}
const timeoutMs = Number(opts.timeout) * 1000;
if (!(timeoutMs > 0)) fail(`--timeout ${opts.timeout}: want a number of seconds`);
const ui = opts.ui.replace(/\/+$/, '');
const ns = opts.namespace;
const id = opts['workflow-id'];
const payload = JSON.stringify({ approver: opts.approver, reason: opts.reason });

const { chromium } = createRequire(join(opts.playwright, 'package.json'))('playwright-core');

// Memory: chromium runs as several processes, children of this one, that share
// much of their memory, so the peak is sampled as the sum of the proportional set
// sizes (PSS: shared pages divided among their users) of this process's tree; the
// plain sum of resident sets, which counts shared pages many times, is kept too.
function treeMemory(root) {
  const children = new Map();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (!children.has(ppid)) children.set(ppid, []);
      children.get(ppid).push(Number(d));
    } catch { /* the process ended */ }
  }
  const total = { pss: 0, rss: 0, processes: 0 };
  const todo = [root];
  while (todo.length) {
    const pid = todo.pop();
    try {
      const m = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
      total.pss += Number(m.match(/^Pss:\s+(\d+) kB/m)?.[1] || 0) * 1024;
      total.rss += Number(m.match(/^Rss:\s+(\d+) kB/m)?.[1] || 0) * 1024;
      total.processes++;
    } catch { /* the process ended */ }
    todo.push(...(children.get(pid) || []));
  }
  return total;
}
const peak = { pss: 0, rss: 0, processes: 0 };
const sampler = setInterval(() => {
  const m = treeMemory(process.pid);
  peak.pss = Math.max(peak.pss, m.pss);
  peak.rss = Math.max(peak.rss, m.rss);
  peak.processes = Math.max(peak.processes, m.processes);
}, 250);

let browser;
let page;
let step = 'starting chromium';
let stepKey = 'launch';
const timings = {};
let stepStarted = Date.now();
// next records how long the last step took (milliseconds, in the summary) and
// names the one that starts, for the error message if it fails.
function next(key, name) {
  timings[stepKey] = Date.now() - stepStarted;
  stepKey = key;
  step = name;
  stepStarted = Date.now();
}
async function run() {
  browser = await chromium.launch({
    executablePath: opts.chromium,
    headless: true,
    timeout: timeoutMs,
    // The machine has no outside network: keep chromium from reaching for it.
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--disable-dev-shm-usage'],
  });
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  context.setDefaultTimeout(timeoutMs);
  page = await context.newPage();

  // The list's visibility store lags a start by a moment: reload until it shows.
  next('list', `finding the running workflow ${id} in the workflow list of namespace ${ns}`);
  const query = `WorkflowId="${id}" AND ExecutionStatus="Running"` + (opts.filter ? ` AND (${opts.filter})` : '');
  const listURL = `${ui}/namespaces/${encodeURIComponent(ns)}/workflows?query=${encodeURIComponent(query)}`;
  // Never wait for "networkidle": the UI keeps long polls open.
  await page.goto(listURL, { waitUntil: 'domcontentloaded' });
  const link = page.getByRole('link', { name: id, exact: true }).filter({ visible: true }).first();
  const listDeadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await link.waitFor({ timeout: 5000 });
      break;
    } catch (e) {
      if (Date.now() > listDeadline) throw new Error(`the list shows no workflow for the query ${query} (${listURL})`);
      await page.reload({ waitUntil: 'domcontentloaded' });
    }
  }

  next('open', `opening the workflow page of ${id}`);
  await link.click();
  await page.waitForURL(/\/history(\?|$)/);

  // The workflow's own words on its page (its current details): each --expect text.
  // The UI shows them under the workflow's "User Metadata" tab.
  if (opts.expect.length > 0) {
    next('details', `reading the workflow's details (User Metadata): ${opts.expect.map((e) => JSON.stringify(e)).join(', ')}`);
    await page.getByTestId('user-metadata-tab').filter({ visible: true }).first().click();
    await page.waitForURL(/\/user-metadata(\?|$)/);
    // Each Markdown text (the summary, the current details) is rendered in an
    // iframe of its own.
    const frames = 'iframe[title="output"]';
    await page.locator(frames).first().waitFor();
    for (const text of opts.expect) {
      const deadline = Date.now() + 30000;
      for (;;) {
        let found = false;
        const n = await page.locator(frames).count();
        for (let i = 0; i < n && !found; i++) {
          found = (await page.frameLocator(`${frames} >> nth=${i}`).getByText(text, { exact: false }).count()) > 0;
        }
        if (found) break;
        if (Date.now() > deadline) {
          throw new Error(`the workflow's User Metadata tab does not show ${JSON.stringify(text)} (its current details)`);
        }
        await page.waitForTimeout(500);
      }
    }
    await page.getByTestId('history-tab').filter({ visible: true }).first().click();
    await page.waitForURL(/\/history(\?|$)/);
  }

  // "More Actions" is twice in the DOM, one of them hidden.
  next('menu', 'opening More Actions → Send a Signal');
  await page.getByRole('button', { name: 'More Actions' }).filter({ visible: true }).first().click();
  await page.getByTestId('signal-button').filter({ visible: true }).first().click();
  const dialog = page.locator('dialog[open]').filter({ hasText: 'Send a Signal' });
  await dialog.waitFor();

  next('choose', `choosing the signal ${opts.signal} from the workflow's signal definitions`);
  await dialog.getByTestId('signal-select-button').click();
  const options = dialog.getByRole('option').filter({ visible: true });
  await options.first().waitFor();
  const listed = (await options.allInnerTexts()).map((t) => t.trim().replace(/\s+/g, ' '));
  const option = options.filter({ has: page.locator('span', { hasText: new RegExp(`^${escapeRegExp(opts.signal)}$`) }) });
  if ((await option.count()) !== 1) {
    throw new Error(`the dialog lists no signal definition named "${opts.signal}" (it lists: ${listed.join(' | ')}); ` +
      'does the workflow register it with workflow.GetSignalChannelWithOptions and a Description?');
  }
  const description = (await option.innerText()).trim().replace(/\s+/g, ' ').slice(opts.signal.length).trim();
  await option.click();

  // The data field is a CodeMirror editor. It re-formats the JSON when it loses
  // focus, which moves the Submit button: blur it first, then submit.
  next('type', 'typing the signal\'s input into the JSON editor');
  const editor = dialog.locator('.cm-content[contenteditable="true"]');
  await editor.click();
  await page.keyboard.insertText(payload);
  await editor.evaluate((el) => el.blur());
  await dialog.getByRole('heading', { name: 'Send a Signal' }).click();
  const typed = JSON.parse((await editor.innerText()).trim());
  if (typed.approver !== opts.approver) throw new Error(`the editor holds ${JSON.stringify(typed)}, not ${payload}`);

  next('submit', 'submitting the signal');
  const submit = dialog.getByTestId('confirm-modal-button');
  await expectEnabled(submit);
  await submit.click();
  const toast = page.getByText('Workflow signaled.', { exact: false }).filter({ visible: true }).first();
  await toast.waitFor();
  await dialog.waitFor({ state: 'hidden' });

  next('history', 'waiting for the "Workflow Execution Signaled" event in the history');
  await page.getByText('Workflow Execution Signaled').filter({ visible: true }).first().waitFor();

  next('done', 'closing the browser');
  return { url: page.url(), description };
}

async function expectEnabled(locator) {
  const deadline = Date.now() + timeoutMs;
  while (!(await locator.isEnabled())) {
    if (Date.now() > deadline) throw new Error('the Submit button stays disabled (is the JSON valid, is a signal chosen?)');
    await new Promise((r) => setTimeout(r, 100));
  }
}

function escapeRegExp(s) {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

async function keepEvidence() {
  const dir = opts.artifacts || mkdtempSync(join(tmpdir(), 'conveyor-ui-'));
  mkdirSync(dir, { recursive: true });
  const shot = join(dir, 'failure.png');
  try {
    await page.screenshot({ path: shot, fullPage: true, timeout: 10000 });
    writeFileSync(join(dir, 'failure.html'), await page.content());
    return `screenshot ${shot}, page ${join(dir, 'failure.html')} (at ${page.url()})`;
  } catch (e) {
    return `no screenshot: ${e.message}`;
  }
}

let code = 0;
try {
  const r = await run();
  clearInterval(sampler);
  console.error(`approve.mjs: sent ${opts.signal} ${payload} to ${id} in ${ns} through the UI (${r.url}); ` +
    `the dialog listed it as "${r.description}"`);
  console.log(JSON.stringify({
    signaled: true, signal: opts.signal, workflowId: id, namespace: ns, page: r.url,
    wallMs: Date.now() - started, stepsMs: timings, peakPSSBytes: peak.pss, peakRSSSumBytes: peak.rss, peakProcesses: peak.processes,
  }));
} catch (e) {
  clearInterval(sampler);
  const evidence = page ? await keepEvidence() : 'no page was open';
  console.error(`approve.mjs: ${step}: ${e.message.split('\n')[0]}\n  ${evidence}`);
  code = 1;
} finally {
  if (browser) await browser.close().catch(() => {});
}
process.exit(code);

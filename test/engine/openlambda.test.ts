// Porting lambdas from OpenLambda: what a port gets wrong is said clearly, in one line, by a
// real worker: a bad ol.yaml, a missing entry file, pins Debian does not ship, an app answering
// a header HTTP cannot carry. (That the lambdas themselves run unchanged is
// test/app/compatOpenlambda.test.ts.)
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { baseProblem } from '../../engine/sandbox/baseRootfs.js';
import { DEFAULT_STATE_DIR, StateDir } from '../../engine/state/stateDir.js';
import { skipWith } from '../helpers/helpers.js';
import { BASE, engineScratch, lambda, removeScratch, SOCK_CLI, startWorker } from '../helpers/sockWorker.js';

const mistakes = suite('OpenLambda lambdas: mistakes a port makes are said in one line');

mistakes.after(removeScratch);

mistakes('a bad ol.yaml, a missing entry file and an entry file outside the lambda are 403 bad-lambda', async () => {
  const w = await startWorker();
  try {
    const cases: [string, Record<string, string>, string][] = [
      ['notyaml', { 'f.py': 'def f(e):\n    return 1\n', 'ol.yaml': 'triggers: [http\n' }, 'ol.yaml is not YAML'],
      [
        'nomethod',
        { 'f.py': 'def f(e):\n    return 1\n', 'ol.yaml': 'triggers:\n  http:\n    - {}\n' },
        'needs a method',
      ],
      ['noentry', { 'ol.yaml': 'environment:\n  OL_ENTRY_FILE: app.py\n' }, 'its entry file app.py'],
      ['climb', { 'f.py': '', 'ol.yaml': 'environment:\n  OL_ENTRY_FILE: ../x.py\n' }, 'inside the lambda'],
      ['envmap', { 'f.py': '', 'ol.yaml': 'environment:\n  A: {b: 1}\n' }, 'plain value'],
      ['reuse', { 'f.py': '', 'ol.yaml': 'reuse-sandbox: sometimes\n' }, 'true or false'],
      ['paper', { 'lambda_func.py': '', 'packages.txt': 'numpy\n' }, '"<import>:<install>"'],
    ];
    for (const [name, files, mention] of cases) {
      fs.mkdirSync(path.join(w.registry, name));
      for (const [file, text] of Object.entries(files)) fs.writeFileSync(path.join(w.registry, name, file), text);
      const res = await fetch(`${w.url}/run/${name}`, { method: 'POST' });
      const body = (await res.json()) as { error: string; kind: string };
      assert.is(res.status, 403, `${name}: ${JSON.stringify(body)}`);
      assert.is(body.kind, 'bad-lambda');
      assert.match(body.error, `lambda '${name}'`);
      assert.match(body.error, mention);
      assert.not.match(body.error, '\n');
    }
  } finally {
    assert.is(await w.stop(), 0);
  }
});

mistakes("pip-compile's pins Debian does not ship are refused naming --installer pip, the tool for pins", async () => {
  const w = await startWorker({ caches: true });
  try {
    for (const [name, pin, mention] of [
      ['pinned', 'flask==2.3.2', "Debian's python3-flask is 2.2.2"],
      ['unshipped', 'annotated-doc==0.0.4', 'Debian may not ship it'],
    ] as const) {
      lambda(w.registry, name, 'def f(event):\n    return 1\n');
      fs.writeFileSync(path.join(w.registry, name, 'requirements.txt'), `# via pip-compile\n${pin}\n`);
      const res = await fetch(`${w.url}/run/${name}`, { method: 'POST' });
      const body = (await res.json()) as { error: string; kind: string };
      assert.is(res.status, 500, JSON.stringify(body));
      assert.is(body.kind, 'install');
      assert.match(body.error, mention);
      assert.match(body.error, '--installer pip');
    }
  } finally {
    assert.is(await w.stop(), 0);
  }
});

mistakes(
  "an app's header, status or reason HTTP cannot carry is a 502; the worker's own headers are its own",
  async () => {
    const w = await startWorker();
    try {
      lambda(
        w.registry,
        'badheader',
        'def app(environ, start_response):\n    start_response("200 OK", [("X-Bad", "a\\r\\nInjected: 1")])\n    return [b"x"]\n',
      );
      const bad = await fetch(`${w.url}/run/badheader`);
      assert.is(bad.status, 502);
      assert.equal(((await bad.json()) as { kind: string }).kind, 'protocol');
      // A status that is not a final one, or a reason that is not one line, breaks the protocol too.
      for (const [name, status] of [
        ['switch', '101 Switching Protocols'],
        ['reason', '200 OK\\r\\nInjected: 1'],
      ]) {
        lambda(
          w.registry,
          name!,
          `def app(environ, start_response):\n    start_response("${status}", [])\n    return [b"x"]\n`,
        );
        const res = await fetch(`${w.url}/run/${name}`);
        assert.is(res.status, 502, name);
        assert.equal(((await res.json()) as { kind: string }).kind, 'protocol', name);
        assert.is(res.headers.get('injected'), null);
      }
      lambda(
        w.registry,
        'spoof',
        'def app(environ, start_response):\n    start_response("200 OK", [("Content-Length", "999"), ("X-Sock-Start", "warm"), ("Connection", "close")])\n    return [b"four"]\n',
      );
      const spoof = await fetch(`${w.url}/run/spoof`);
      assert.is(await spoof.text(), 'four');
      assert.is(spoof.headers.get('content-length'), '4');
      assert.is(spoof.headers.get('x-sock-start'), 'lean', "the start kind is the worker's, not the handler's");
      const metrics = await fetch(`${w.url}/metrics`, { method: 'POST' });
      assert.is(metrics.status, 405);
    } finally {
      assert.is(await w.stop(), 0);
    }
  },
);

const setupBase = new StateDir(DEFAULT_STATE_DIR).defaultBase;
skipWith(
  BASE !== setupBase || baseProblem(setupBase)
    ? `the tests' base is ${BASE}, not the one setup builds in ${setupBase}`
    : undefined,
  mistakes,
)('worker up with a new --state-dir and no --base finds the base setup built', async () => {
  const registry = engineScratch();
  const stateDir = engineScratch();
  const env = { ...process.env };
  delete env.SOCK_BASE;
  const proc = execFile(
    process.execPath,
    [SOCK_CLI, 'worker', 'up', '--port', '0', '--registry', registry, '--state-dir', stateDir],
    { env },
  );
  let log = '';
  const listening = await new Promise<boolean>((resolve) => {
    proc.stderr!.on('data', (chunk: string) => {
      log += chunk;
      if (log.includes('listening on')) resolve(true);
    });
    proc.on('exit', () => resolve(false));
  });
  const exited = new Promise((r) => proc.on('exit', r));
  proc.kill('SIGTERM');
  await exited;
  assert.ok(listening, log);
});

mistakes.run();

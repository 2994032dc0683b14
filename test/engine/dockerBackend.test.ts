// The Docker baseline against a real dockerd (scripts/setup.sh installs and starts one): the
// same behavioural suite as SOCK's lean containers, and cleanup after a crashed worker.
import Docker from 'dockerode';
import fs from 'node:fs';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { DockerEngine, STATE_LABEL } from '../../engine/sandbox/dockerEngine.js';
import { mountsUnder } from '../../engine/state/mountinfo.js';
import { sandboxBehaviour } from '../helpers/sandboxBehaviour.js';
import { BASE, lambda, post, removeScratch, startWorker } from '../helpers/sockWorker.js';

const docker = new Docker();

async function containersOf(stateDir: string): Promise<string[]> {
  const found = await docker.listContainers({
    all: true,
    filters: { label: [`${STATE_LABEL}=${fs.realpathSync(stateDir)}`] },
  });
  return found.map((c) => c.Id);
}

sandboxBehaviour(
  'docker',
  (stateDir, limits) => DockerEngine.start({ stateDir, base: BASE, capacity: 2, limits }),
  containersOf,
);

const crash = suite('docker: the worker with --backend docker');

crash('answers over HTTP, with the bridge network and --network none, and its own mount namespace', async () => {
  for (const backend of ['docker', 'docker-netnone']) {
    const w = await startWorker({ args: ['--backend', backend] });
    lambda(
      w.registry,
      'ns',
      'import os\ndef f(event):\n    return {n: os.readlink("/proc/self/ns/" + n) for n in ("net", "mnt")} | {"ifaces": sorted(os.listdir("/sys/class/net"))}\n',
    );
    const r = await post(w.url, 'ns', '{}');
    assert.is(r.status, 200, JSON.stringify(r.body));
    assert.is.not(r.body.mnt, fs.readlinkSync('/proc/self/ns/mnt'));
    assert.is.not(r.body.net, fs.readlinkSync('/proc/self/ns/net'));
    assert.equal(r.body.ifaces.includes('eth0'), backend === 'docker', r.body.ifaces.join(','));
    assert.is(await w.stop(), 0);
    assert.equal(await containersOf(w.stateDir), []);
  }
});

crash('containers of a killed worker are found by their label and removed by the next one', async () => {
  const first = await startWorker({ args: ['--backend', 'docker'] });
  lambda(first.registry, 'sleep', 'import time\ndef f(event):\n    time.sleep(60)\n');
  const pending = post(first.url, 'sleep', '{}').catch(() => 'no answer');
  for (let i = 0; i < 200 && (await containersOf(first.stateDir)).length === 0; i++)
    await new Promise((r) => setTimeout(r, 50));
  assert.is((await containersOf(first.stateDir)).length, 1);
  await first.stop('SIGKILL');
  await pending;
  assert.is((await containersOf(first.stateDir)).length, 1, 'a killed worker cannot remove its container');
  const second = await startWorker({
    registry: first.registry,
    stateDir: first.stateDir,
    args: ['--backend', 'docker'],
  });
  assert.match(second.log(), '1 containers labelled');
  assert.equal(await containersOf(second.stateDir), []);
  assert.is(await second.stop(), 0);
  assert.equal(mountsUnder(fs.realpathSync(second.stateDir)), []);
});

crash.after(removeScratch);

crash.run();

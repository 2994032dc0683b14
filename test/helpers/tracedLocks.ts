// Runs a command between two cuts of the harness's lock tracer, with a `perf record` that runs
// this (started with -D -1, its events off) recording over the same interval, and writes that
// interval's lock rows (harness/tracer.ts' LockRow[]) as JSON. perf is switched on just before
// the first cut and off just after the second, through its control fifos: outside them it
// would also count the waits of our tracer's start and stop, and of whatever else the machine
// ran meanwhile.
//
// Usage: perf record -D -1 --control fifo:CTL,ACK ... -- node tracedLocks.js ROWS.json CTL ACK -- COMMAND [ARG...]
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { Tracer } from '../../harness/tracer.js';

const [rowsFile, ctlFifo, ackFifo, separator, command, ...args] = process.argv.slice(2);
if (!rowsFile || !ctlFifo || !ackFifo || separator !== '--' || !command) {
  console.error('usage: tracedLocks.js ROWS.json CTL ACK -- COMMAND [ARG...]');
  process.exit(2);
}
// Read and write: opening a fifo so never waits for the other end.
const ctl = fs.openSync(ctlFifo, 'r+');
const ack = fs.openSync(ackFifo, 'r+');

/** Sends perf a control command and waits until perf has carried it out. */
function perf(order: 'enable' | 'disable') {
  fs.writeSync(ctl, `${order}\n`);
  const answer = Buffer.alloc(16);
  const n = fs.readSync(ack, answer);
  if (!answer.subarray(0, n).toString().startsWith('ack')) throw new Error(`perf answered ${order} with ${answer}`);
}

const tracer = await Tracer.start(['locks']);
try {
  perf('enable');
  await tracer.cut(); // the waits of the tracer's own start are not the command's
  execFileSync(command, args, { stdio: ['ignore', 'ignore', 'inherit'] });
  const rows = (await tracer.cut()).locks;
  perf('disable');
  fs.writeFileSync(rowsFile, JSON.stringify(rows));
} finally {
  await tracer.stop();
}

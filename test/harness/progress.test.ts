import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Progress } from '../../harness/progress.js';

function fakeStream(isTTY: boolean): { stream: NodeJS.WriteStream; written: string[] } {
  const written: string[] = [];
  const stream = { isTTY, columns: 200, write: (s: string) => written.push(s) > 0 };
  return { stream: stream as unknown as NodeJS.WriteStream, written };
}

test('without a terminal only notes are written', () => {
  const { stream, written } = fakeStream(false);
  const p = new Progress(stream);
  p.begin(2);
  p.step('netns ipc c=1 rep 1/1');
  p.advance();
  p.note('tracing unavailable');
  p.end();
  assert.equal(written, ['tracing unavailable\n']);
});

test('on a terminal the bar is drawn, cleared for a note, redrawn, and cleared at the end', () => {
  const { stream, written } = fakeStream(true);
  const p = new Progress(stream, true);
  p.begin(40);
  p.step('netns ipc+net c=64 rep 2/3');
  assert.match(written.at(-1) ?? '', /^\r\[1\/40\] netns ipc\+net c=64 rep 2\/3 {2}00:00 elapsed\x1b\[K$/);
  p.advance();
  assert.match(written.at(-1) ?? '', /^\r\[2\/40\] .* elapsed, ~00:00 left\x1b\[K$/);
  p.note('hello');
  assert.equal(written.slice(-3, -1), ['\r\x1b[K', 'hello\n']);
  assert.match(written.at(-1) ?? '', /^\r\[2\/40\]/);
  p.end();
  assert.is(written.at(-1), '\r\x1b[K');
});

test.run();

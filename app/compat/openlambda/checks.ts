// What a user porting OpenLambda lambdas expects of the worker, one check each, against the
// lambdas beside this file (ours, written to OpenLambda's documented conventions: its
// examples' shapes, its worker's Python runtime, its ol.yaml). A check sends real requests
// to a real worker and throws, in one line, what it saw instead of what OpenLambda does.
import type { StartKind } from '../openlambda.js';

export interface Answer {
  status: number;
  reason: string;
  headers: Headers;
  body: Buffer;
  text: string;
  /** The worker's x-sock-start: warm, zygote:<packages>, lean; '' when no sandbox was got. */
  start: string;
}

export interface CallOptions {
  /** [POST with a body, GET without, as curl] */
  method?: string;
  /** Below /run/<lambda>, from "/", with any query. */
  path?: string;
  body?: string | Buffer;
  headers?: Record<string, string>;
}

export interface CheckContext {
  start: StartKind;
  /** A request to /run/<lambda><path>. */
  call(lambda: string, options?: CallOptions): Promise<Answer>;
  /** A request to any path of the worker. */
  fetch(path: string, options?: CallOptions): Promise<Answer>;
}

export interface Check {
  name: string;
  /** Installs packages (flask, fastapi): skipped when the suite runs without an installer. */
  packages?: boolean;
  run(ctx: CheckContext): Promise<void>;
}

function expect(ok: boolean, saw: string): void {
  if (!ok) throw new Error(saw);
}

function expectAnswer(a: Answer, status: number, text?: string): void {
  expect(a.status === status, `status ${a.status}, not ${status}: ${a.text.slice(0, 200)}`);
  if (text !== undefined) expect(a.text === text, `body ${JSON.stringify(a.text)}, not ${JSON.stringify(text)}`);
}

/** Two requests in a row: the second reaches the same instance (its count one more) when warm, a new one (count 1) otherwise. */
async function expectInstanceKept(
  ctx: CheckContext,
  lambda: string,
  options: CallOptions,
  count: (a: Answer) => number,
) {
  const first = await ctx.call(lambda, options);
  const second = await ctx.call(lambda, options);
  expect(first.status < 500 && second.status < 500, `status ${first.status} then ${second.status}: ${second.text}`);
  const [a, b] = [count(first), count(second)];
  if (ctx.start === 'warm') {
    expect(second.start === 'warm', `the second request started ${second.start}, not warm`);
    expect(b === a + 1, `count ${a} then ${b}: the app object was not kept across warm hits`);
  } else expect(a === 1 && b === 1, `count ${a} then ${b}: each ${ctx.start} start should make the app once`);
}

const countIn = (a: Answer) => Number(/count=(\d+)/.exec(a.text)?.[1] ?? NaN);

export const CHECKS: Check[] = [
  {
    name: "a function's answer is json.dumps(result), byte for byte, no newline",
    async run(ctx) {
      expectAnswer(
        await ctx.call('echo', { body: '{"a": 1.0, "b": "\\u00e9", "c": [true, null]}' }),
        200,
        '{"a": 1.0, "b": "\\u00e9", "c": [true, null]}',
      );
      expectAnswer(await ctx.call('nan'), 200, '{"nan": NaN, "inf": Infinity, "float": 1.0, "text": "\\u00e9"}');
    },
  },
  {
    name: 'an empty body is the event {}',
    async run(ctx) {
      expectAnswer(await ctx.call('echo', { body: '' }), 200, '{}');
    },
  },
  {
    name: 'a function takes any method and sub-path when no ol.yaml limits them',
    async run(ctx) {
      expectAnswer(await ctx.call('echo', { method: 'GET', path: '/a/b?x=1' }), 200, '{}');
      expectAnswer(await ctx.call('echo', { method: 'PUT', path: '/c', body: '[1]' }), 200, '[1]');
    },
  },
  {
    name: "a function's body that is not JSON is a 400",
    async run(ctx) {
      const a = await ctx.call('echo', { body: 'plain text' });
      expect(a.status === 400 && a.text.includes('not JSON'), `status ${a.status}: ${a.text}`);
    },
  },
  {
    name: 'a WSGI callable gets method, SCRIPT_NAME, PATH_INFO, query, headers and raw body; its status and headers come back',
    async run(ctx) {
      const a = await ctx.call('counter-wsgi', {
        method: 'PUT',
        path: '/x/y?q=1&r=two',
        body: 'raw text, not JSON',
        headers: { 'content-type': 'text/plain', 'x-custom': 'yes' },
      });
      expectAnswer(a, 418);
      expect(a.reason === "I'm a teapot", `reason ${JSON.stringify(a.reason)}`);
      for (const line of [
        'method=PUT',
        'script=/run/counter-wsgi',
        'path=/x/y',
        'query=q=1&r=two',
        'type=text/plain',
        'custom=yes',
        'body=raw text, not JSON',
      ])
        expect(a.text.includes(line), `no ${line} in ${JSON.stringify(a.text)}`);
      expect(a.headers.getSetCookie().join(';') === 'a=1;b=2', `Set-Cookie ${a.headers.getSetCookie().join(';')}`);
    },
  },
  {
    name: 'a WSGI app object is made once per instance and kept across warm hits',
    async run(ctx) {
      await expectInstanceKept(ctx, 'counter-wsgi', { method: 'GET' }, countIn);
    },
  },
  {
    name: 'bodies are bytes: every byte value goes in and comes out',
    async run(ctx) {
      const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
      const a = await ctx.call('binary-wsgi', { body: all });
      expectAnswer(a, 200);
      expect(a.body.equals(Buffer.from(all).reverse()), `${a.body.length} bytes came back, not the 256 reversed`);
    },
  },
  {
    name: 'an ASGI app (an object with async __call__) is served, root_path and path split',
    async run(ctx) {
      const a = await ctx.call('raw-asgi', { method: 'POST', path: '/p/q?k=v', body: 'hello' });
      expectAnswer(a, 201);
      expect(a.text.endsWith('root=/run/raw-asgi path=/p/q query=k=v body=hello'), `saw ${JSON.stringify(a.text)}`);
      await expectInstanceKept(ctx, 'raw-asgi', {}, countIn);
    },
  },
  {
    name: "a Flask app (Debian's python3-flask through the install cache): routes, its status and headers, 404 handler, raw POST",
    packages: true,
    async run(ctx) {
      const hi = await ctx.call('flask-app');
      expectAnswer(hi, 418, 'hi\n');
      expect(hi.headers.get('a') === 'B', `header A: ${hi.headers.get('a')}`);
      const info = await ctx.call('flask-app', { path: '/info?x=1' });
      expectAnswer(info, 200);
      const got = JSON.parse(info.text) as Record<string, unknown>;
      expect(
        got.path === '/info' && (got.args as { x?: string }).x === '1' && got.script_root === '/run/flask-app',
        `saw ${info.text}`,
      );
      expectAnswer(await ctx.call('flask-app', { path: '/nowhere' }), 404, 'no route /nowhere\n');
      const echo = await ctx.call('flask-app', {
        method: 'PUT',
        path: '/echo',
        body: 'a=1&b=2',
        headers: { 'content-type': 'text/csv' },
      });
      expectAnswer(echo, 200, 'a=1&b=2');
      expect(
        echo.headers.get('content-type')?.startsWith('text/csv') === true,
        `type ${echo.headers.get('content-type')}`,
      );
    },
  },
  {
    name: "a FastAPI app (Debian's python3-fastapi): ASGI, path and query parameters, kept across warm hits",
    packages: true,
    async run(ctx) {
      const item = await ctx.call('fastapi-app', { path: '/items/42?q=yes' });
      expectAnswer(item, 200, '{"item_id":42,"q":"yes"}');
      await expectInstanceKept(ctx, 'fastapi-app', {}, (a) => (JSON.parse(a.text) as { hits: number }).hits);
    },
  },
  {
    name: "ol.yaml: environment reaches the handler; triggers.http's methods are the only ones taken (405 with Allow)",
    async run(ctx) {
      expectAnswer(
        await ctx.call('env-methods', { method: 'POST', body: '{"k": 1}' }),
        200,
        '{"greeting": "hello from ol.yaml", "mode": "3", "event": {"k": 1}}',
      );
      expectAnswer(await ctx.call('env-methods', { method: 'GET' }), 200);
      const put = await ctx.call('env-methods', { method: 'PUT' });
      expectAnswer(put, 405);
      expect(put.headers.get('allow') === 'GET, POST', `Allow: ${put.headers.get('allow')}`);
    },
  },
  {
    name: 'ol.yaml: OL_ENTRY_FILE names the entry file (a Flask app in app.py, no f.py)',
    packages: true,
    async run(ctx) {
      expectAnswer(await ctx.call('flask-entry', { method: 'GET' }), 200, 'served from app.py\n');
    },
  },
  {
    name: 'ol.yaml: OL_WSGI_ENTRY names the app object in the entry file',
    async run(ctx) {
      expectAnswer(await ctx.call('wsgi-named'), 200, 'my_wsgi_app from main.py\n');
    },
  },
  {
    name: 'ol.yaml: a Kafka trigger is said at load time (log and /status) while its HTTP trigger is served',
    async run(ctx) {
      expectAnswer(await ctx.call('kafka-too', { method: 'POST' }), 200, '{"via": "http"}');
      const status = JSON.parse((await ctx.fetch('/status')).text) as {
        worker: { unsupported: Record<string, string[]> };
      };
      const said = status.worker.unsupported?.['kafka-too'] ?? [];
      expect(
        said.some((s) => s.includes('kafka')),
        `/status says ${JSON.stringify(said)} for kafka-too`,
      );
    },
  },
  {
    name: 'ol.yaml: reuse-sandbox: false gives each request a sandbox of its own',
    async run(ctx) {
      for (let i = 0; i < 2; i++) {
        const a = await ctx.call('fresh-each');
        expectAnswer(a, 200, '{"calls": 1}');
        expect(a.start !== 'warm', 'a kept instance answered');
      }
    },
  },
  {
    name: 'a lambda packed as <name>.tar.gz in the registry is served',
    async run(ctx) {
      expectAnswer(await ctx.call('packed'), 200, '{"packed": true, "files": ["f.py"]}');
    },
  },
  {
    name: "the SOCK paper's format: lambda_func.py's handler(event), packages.txt, POST /runLambda/<name>",
    packages: true,
    async run(ctx) {
      const a = await ctx.fetch('/runLambda/paper-era', { method: 'POST', body: '{"name": "Ada"}' });
      expectAnswer(a, 200, '{"hello": "Ada", "yaml": "yaml"}');
    },
  },
  {
    name: 'GET /metrics is Prometheus text: requests by status and start, latency histograms by start, caches, zygotes',
    async run(ctx) {
      const a = await ctx.fetch('/metrics');
      expectAnswer(a, 200);
      expect(a.headers.get('content-type')?.startsWith('text/plain') === true, `type ${a.headers.get('content-type')}`);
      const value = (series: string) =>
        Number(
          a.text
            .split('\n')
            .find((line) => line.startsWith(`${series} `))
            ?.slice(series.length + 1) ?? NaN,
        );
      const kind = ctx.start === 'warm' ? 'warm' : ctx.start;
      expect(value(`sock_requests_total{code="200",start="${kind}"}`) > 0, `no 200 started ${kind} counted`);
      expect(value(`sock_request_duration_seconds_count{start="${kind}"}`) > 0, `no ${kind} latency observed`);
      expect(value('sock_sandboxes_created') > 0, 'no sandbox counted as made');
      if (ctx.start === 'warm') expect(value('sock_handler_cache_hits') > 0, 'no handler cache hit counted');
      if (ctx.start !== 'lean')
        expect(a.text.includes('sock_zygote_memory_bytes{packages="(root)"}'), "no root zygote's memory");
    },
  },
];

// What a lambda's own files say about how to run it, read once per version: the entry point,
// the environment, the HTTP methods it takes and the packages it needs. Three shapes are read:
// - OpenLambda's: f.py (or the file its ol.yaml names in OL_ENTRY_FILE), requirements.txt, and
//   ol.yaml with triggers.http (the methods; every one by default), environment (given to the
//   handler; OL_ENTRY_FILE, OL_WSGI_ENTRY and OL_ASGI_ENTRY among them choose the entry) and
//   reuse-sandbox (false: a fresh sandbox per request);
// - the SOCK paper's: lambda_func.py defining handler(event), and packages.txt of
//   "<import>:<install>" lines (the install names are the requirements);
// - ours: sock.json, {"network": "outbound"} for connections beyond the sandbox.
// A trigger the worker does not run (Kafka, cron) is not ignored in silence: it is named in
// `unsupported`, which the worker logs when it loads the lambda and shows in /status. Anything
// else malformed is the author's mistake, refused with a BadLambdaError in one line.
import { parse as parseYaml } from 'yaml';
import type { HandlerEntry } from '../sandbox/sandbox.js';

export type LambdaNetwork = 'loopback' | 'outbound';

/** The lambda breaks a rule of the registry (a link, a file its owner could not read, a bad ol.yaml, ...): its author's to fix. */
export class BadLambdaError extends Error {}

export interface LambdaSettings {
  /** The file and attribute the runtime serves, and the environment it sets first. */
  entry: HandlerEntry;
  /** The requirements' lines without comments and blanks, e.g. "numpy==2.1.0". */
  requirements: string[];
  network: LambdaNetwork;
  /** HTTP methods it answers (ol.yaml's triggers.http); "*" is any. */
  methods: string[];
  /** False (ol.yaml's reuse-sandbox): each request gets a sandbox of its own, destroyed after it. */
  reuse: boolean;
  /** What it asks for that this worker does not do, one phrase each ("a kafka trigger (topics: t)"). */
  unsupported: string[];
}

/** The files a lambda is read from: path -> contents. */
export type LambdaSources = Map<string, Buffer>;

/** The files that make a directory (or an archive) a lambda: one of them must be at its top. */
export const ENTRY_MARKERS = ['f.py', 'ol.yaml', 'lambda_func.py'];

const ENV_NAME = /^[^=\0]+$/;
const OL_YAML_KEYS = new Set(['triggers', 'environment', 'reuse-sandbox']);

export function readSettings(name: string, sources: LambdaSources): LambdaSettings {
  const text = (file: string) => sources.get(file)?.toString('utf8');
  const bad = (why: string) => new BadLambdaError(`lambda '${name}': ${why}`);
  const settings: LambdaSettings = {
    entry: {},
    requirements: [],
    network: 'loopback',
    methods: ['*'],
    reuse: true,
    unsupported: [],
  };
  const olYaml = text('ol.yaml');
  if (olYaml !== undefined) readOlYaml(olYaml, settings, bad);
  else if (!sources.has('f.py') && sources.has('lambda_func.py'))
    settings.entry = { file: 'lambda_func.py', func: 'handler' };
  const file = settings.entry.file ?? 'f.py';
  if (!sources.has(file))
    throw bad(
      settings.entry.env?.OL_ENTRY_FILE
        ? `its entry file ${file} (ol.yaml's OL_ENTRY_FILE) is not in the lambda`
        : `it has no ${file}`,
    );
  const requirements = text('requirements.txt');
  const packages = text('packages.txt');
  if (requirements !== undefined) settings.requirements = parseRequirements(requirements);
  else if (packages !== undefined) settings.requirements = parsePackagesTxt(packages, bad);
  const sockJson = text('sock.json');
  if (sockJson !== undefined) settings.network = parseSockJson(sockJson, bad);
  return settings;
}

function readOlYaml(text: string, settings: LambdaSettings, bad: (why: string) => BadLambdaError): void {
  let doc: unknown;
  try {
    doc = parseYaml(text) ?? {};
  } catch (e) {
    throw bad(`ol.yaml is not YAML: ${(e as Error).message.split('\n')[0]}`);
  }
  if (!isObject(doc)) throw bad('ol.yaml must be a mapping (triggers, environment, reuse-sandbox)');
  for (const key of Object.keys(doc).filter((k) => !OL_YAML_KEYS.has(k)))
    settings.unsupported.push(`ol.yaml key '${key}' (ignored)`);
  const triggers = doc.triggers ?? {};
  if (!isObject(triggers)) throw bad('ol.yaml: triggers must be a mapping (http, cron, kafka)');
  for (const [kind, list] of Object.entries(triggers)) {
    if (!Array.isArray(list)) throw bad(`ol.yaml: triggers.${kind} must be a list`);
    if (kind === 'http') {
      const methods = list.map((t: unknown) => (isObject(t) ? t.method : undefined));
      if (methods.some((m) => typeof m !== 'string' || m === ''))
        throw bad('ol.yaml: each triggers.http entry needs a method, e.g. "- method: POST"');
      settings.methods = (methods as string[]).map((m) => m.toUpperCase());
    } else if (kind === 'kafka' || kind === 'cron') {
      for (const t of list) settings.unsupported.push(`a ${kind} trigger (${JSON.stringify(t)})`);
    } else settings.unsupported.push(`a trigger of unknown kind '${kind}'`);
  }
  const environment = doc.environment ?? {};
  if (!isObject(environment)) throw bad('ol.yaml: environment must be a mapping of NAME: value');
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(environment)) {
    if (!ENV_NAME.test(key)) throw bad(`ol.yaml: environment variable name ${JSON.stringify(key)} is not allowed`);
    if (value !== null && typeof value === 'object')
      throw bad(`ol.yaml: environment variable ${key} must be a plain value, not a list or mapping`);
    const text = value === null ? '' : String(value);
    if (text.includes('\0')) throw bad(`ol.yaml: environment variable ${key} holds a NUL byte`);
    env[key] = text;
  }
  const file = env.OL_ENTRY_FILE;
  if (file !== undefined && (!file.endsWith('.py') || file.startsWith('/') || file.split('/').includes('..')))
    throw bad(`ol.yaml: OL_ENTRY_FILE must be a .py file inside the lambda, not ${JSON.stringify(file)}`);
  settings.entry = {
    ...(file !== undefined && { file }),
    ...(env.OL_WSGI_ENTRY && { wsgi: env.OL_WSGI_ENTRY }),
    ...(env.OL_ASGI_ENTRY && { asgi: env.OL_ASGI_ENTRY }),
    ...(Object.keys(env).length > 0 && { env }),
  };
  const reuse = doc['reuse-sandbox'];
  if (reuse !== undefined && typeof reuse !== 'boolean') throw bad('ol.yaml: reuse-sandbox must be true or false');
  settings.reuse = reuse ?? true;
}

/** sock.json: {"network": "loopback" | "outbound"}. */
function parseSockJson(text: string, bad: (why: string) => BadLambdaError): LambdaNetwork {
  let settings: unknown;
  try {
    settings = JSON.parse(text);
  } catch (e) {
    throw bad(`sock.json is not JSON: ${(e as Error).message}`);
  }
  if (!isObject(settings)) throw bad('sock.json must be an object, e.g. {"network": "outbound"}');
  const unknown = Object.keys(settings).filter((k) => k !== 'network');
  if (unknown.length > 0)
    throw bad(`sock.json: unknown setting ${unknown.map((k) => JSON.stringify(k)).join(', ')} (known: "network")`);
  const network = settings.network ?? 'loopback';
  if (network !== 'loopback' && network !== 'outbound')
    throw bad(`sock.json: "network" is "loopback" or "outbound", not ${JSON.stringify(network)}`);
  return network;
}

/** Package lines of a pip-style requirements file: comments (# ...) and blank lines dropped. */
export function parseRequirements(text: string): string[] {
  return text
    .split('\n')
    .map((line) => line.replace(/#.*/, '').trim())
    .filter((line) => line.length > 0);
}

/** The SOCK paper's packages.txt: "<import name>:<install name>" per line; the install names. */
function parsePackagesTxt(text: string, bad: (why: string) => BadLambdaError): string[] {
  return parseRequirements(text).map((line) => {
    const parts = line.split(':');
    if (parts.length !== 2 || !parts[1]!.trim())
      throw bad(`packages.txt: ${JSON.stringify(line)} is not "<import>:<install>"`);
    return parts[1]!.trim();
  });
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

// The part of GitHub Actions' `${{ }}` expression language that .github/workflows/kernels.yml
// uses, and nothing more: an expression using anything else is refused by name, so a workflow
// change that this check cannot follow fails the check instead of being evaluated wrongly.
import { UsageError } from '../../harness/errors.js';

export type Value = string | number | boolean | null;

/** What an expression may read where it is evaluated; an absent context is refused there. */
export interface ExprContext {
  inputs?: Record<string, string>;
  matrix?: Record<string, Value>;
  strategy?: { 'job-index': number };
  /** Every step id of the job, with the outputs its step has set so far. */
  steps?: Record<string, Record<string, string>>;
  /** The job's or the needed jobs' state, for the status functions. */
  status?: { failed: boolean };
}

const FOLLOWED =
  "inputs.<name>, matrix.<key>, strategy.job-index, steps.<id>.outputs.<name>, 'strings', ||, !, ( ), always(), success(), failure(), cancelled()";
const STATUS_FUNCTIONS = ['always', 'success', 'failure', 'cancelled'] as const;

function refusal(where: string, text: string, what: string): UsageError {
  return new UsageError(`${where}: \${{ ${text.trim()} }}: the check does not follow ${what} (it follows ${FOLLOWED})`);
}

type Node =
  | { kind: 'string'; value: string }
  | { kind: 'path'; parts: string[] }
  | { kind: 'call'; name: (typeof STATUS_FUNCTIONS)[number] }
  | { kind: 'not'; operand: Node }
  | { kind: 'or'; left: Node; right: Node };

class Parser {
  private pos = 0;
  constructor(
    private readonly text: string,
    private readonly where: string,
  ) {}

  parse(): Node {
    const node = this.or();
    this.space();
    if (this.pos < this.text.length) {
      const rest = this.text.slice(this.pos).trim();
      const operator = /^(&&|==|!=|<=|>=|[<>[\]*,])/.exec(rest);
      this.refuse(operator ? `the operator ${operator[1]}` : `'${rest}'`);
    }
    return node;
  }

  private refuse(what: string): never {
    throw refusal(this.where, this.text, what);
  }

  private space(): void {
    while (/\s/.test(this.text[this.pos] ?? '')) this.pos++;
  }

  private or(): Node {
    let left = this.unary();
    for (;;) {
      this.space();
      if (!this.text.startsWith('||', this.pos)) return left;
      this.pos += 2;
      left = { kind: 'or', left, right: this.unary() };
    }
  }

  private unary(): Node {
    this.space();
    if (this.text[this.pos] === '!' && this.text[this.pos + 1] !== '=') {
      this.pos++;
      return { kind: 'not', operand: this.unary() };
    }
    return this.primary();
  }

  private primary(): Node {
    this.space();
    const c = this.text[this.pos];
    if (c === '(') {
      this.pos++;
      const inner = this.or();
      this.space();
      if (this.text[this.pos] !== ')') this.refuse('an unclosed (');
      this.pos++;
      return inner;
    }
    if (c === "'") {
      let value = '';
      for (this.pos++; ; this.pos++) {
        if (this.pos >= this.text.length) this.refuse('an unterminated string');
        if (this.text[this.pos] === "'") {
          if (this.text[this.pos + 1] !== "'") break;
          this.pos++;
        }
        value += this.text[this.pos];
      }
      this.pos++;
      return { kind: 'string', value };
    }
    const m = /^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_-]*)*/.exec(this.text.slice(this.pos));
    if (!m) this.refuse(c === undefined ? 'an empty operand' : `'${this.text.slice(this.pos)}'`);
    this.pos += m[0].length;
    if (this.text[this.pos] === '(') {
      const name = m[0] as (typeof STATUS_FUNCTIONS)[number];
      if (!STATUS_FUNCTIONS.includes(name) || this.text[this.pos + 1] !== ')') this.refuse(`the function ${m[0]}()`);
      this.pos += 2;
      return { kind: 'call', name };
    }
    return { kind: 'path', parts: m[0].split('.') };
  }
}

function truthy(v: Value): boolean {
  return v !== null && v !== false && v !== 0 && v !== '';
}

function usesStatus(node: Node): boolean {
  if (node.kind === 'call') return true;
  if (node.kind === 'not') return usesStatus(node.operand);
  if (node.kind === 'or') return usesStatus(node.left) || usesStatus(node.right);
  return false;
}

function lookup(parts: string[], ctx: ExprContext, refuse: (what: string) => never): Value {
  const [head, ...rest] = parts;
  const name = parts.join('.');
  if (head === 'inputs' && rest.length === 1) {
    if (!ctx.inputs) refuse(`${name} here`);
    if (!(rest[0]! in ctx.inputs)) refuse(`${name}, an input the workflow does not declare`);
    return ctx.inputs[rest[0]!]!;
  }
  if (head === 'matrix' && rest.length === 1) {
    if (!ctx.matrix) refuse(`${name} here (no matrix)`);
    if (!(rest[0]! in ctx.matrix)) refuse(`${name}, a key the matrix does not have`);
    return ctx.matrix[rest[0]!]!;
  }
  if (name === 'strategy.job-index') {
    if (!ctx.strategy) refuse(`${name} here`);
    return ctx.strategy['job-index'];
  }
  if (head === 'steps' && rest.length === 3 && rest[1] === 'outputs') {
    if (!ctx.steps) refuse(`${name} here`);
    const outputs = ctx.steps[rest[0]!];
    if (!outputs) refuse(`${name}, a step id this job does not have`);
    // As on GitHub: an output a step did not set (or a step that did not run) reads as ''.
    return outputs[rest[2]!] ?? '';
  }
  return refuse(name);
}

function evaluateNode(node: Node, ctx: ExprContext, refuse: (what: string) => never): Value {
  switch (node.kind) {
    case 'string':
      return node.value;
    case 'path':
      return lookup(node.parts, ctx, refuse);
    case 'not':
      return !truthy(evaluateNode(node.operand, ctx, refuse));
    case 'or': {
      const left = evaluateNode(node.left, ctx, refuse);
      return truthy(left) ? left : evaluateNode(node.right, ctx, refuse);
    }
    case 'call': {
      if (!ctx.status) refuse(`${node.name}() outside an if`);
      // An interruption ends the whole check instead of going on as a cancelled run would.
      if (node.name === 'cancelled') return false;
      if (node.name === 'always') return true;
      return node.name === 'failure' ? ctx.status.failed : !ctx.status.failed;
    }
  }
}

/** Looks up every path of the expression, both sides of each ||, so that none is refused only later. */
function walk(node: Node, ctx: ExprContext, refuse: (what: string) => never): void {
  if (node.kind === 'path') lookup(node.parts, ctx, refuse);
  else if (node.kind === 'not') walk(node.operand, ctx, refuse);
  else if (node.kind === 'or') {
    walk(node.left, ctx, refuse);
    walk(node.right, ctx, refuse);
  } else if (node.kind === 'call' && !ctx.status) refuse(`${node.name}() outside an if`);
}

function parse(text: string, where: string): { node: Node; refuse: (what: string) => never } {
  const parser = new Parser(text, where);
  const node = parser.parse();
  const refuse = (what: string): never => {
    throw refusal(where, text, what);
  };
  return { node, refuse };
}

const TEMPLATE = /\$\{\{(.*?)\}\}/gs;

/** A workflow string with each `${{ expr }}` replaced by its value (null as ''). */
export function interpolate(text: string, ctx: ExprContext, where: string): string {
  return text.replace(TEMPLATE, (_, expr: string) => {
    const { node, refuse } = parse(expr, where);
    const v = evaluateNode(node, ctx, refuse);
    return v === null ? '' : String(v);
  });
}

/** Refuses, before anything runs, what interpolate would refuse for some value of the contexts. */
export function checkTemplates(text: string, ctx: ExprContext, where: string): void {
  for (const [, expr] of text.matchAll(TEMPLATE)) {
    const { node, refuse } = parse(expr!, where);
    walk(node, ctx, refuse);
  }
}

/** The if: of condition, parsed: refuses what condition would refuse. */
export function checkCondition(value: unknown, ctx: ExprContext, where: string): void {
  const node = conditionNode(value, where);
  if (node) walk(node.node, { ...ctx, status: { failed: false } }, node.refuse);
}

function conditionNode(value: unknown, where: string): ReturnType<typeof parse> | undefined {
  if (value === undefined || typeof value === 'boolean') return undefined;
  if (typeof value !== 'string') throw new UsageError(`${where}: if: must be an expression or a boolean`);
  const whole = /^\s*\$\{\{(.*)\}\}\s*$/s.exec(value);
  if (!whole && value.includes('${{'))
    throw new UsageError(
      `${where}: if: '${value}' mixes text with \${{ }} (GitHub reads that as a non-empty string, always true)`,
    );
  return parse(whole ? whole[1]! : value, where);
}

/**
 * An `if:` (absent: success()). As on GitHub, the `${{ }}` around it is optional, and a
 * condition that calls no status function only applies once success() holds.
 */
export function condition(value: unknown, ctx: ExprContext, where: string): boolean {
  const status = ctx.status ?? { failed: false };
  const parsed = conditionNode(value, where);
  if (!parsed) return value !== false && !status.failed;
  const v = truthy(evaluateNode(parsed.node, { ...ctx, status }, parsed.refuse));
  return usesStatus(parsed.node) ? v : v && !status.failed;
}

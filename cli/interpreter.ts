/**
 * aws-local-stepfunctions, the ASL interpreter the local executor runs the workflows with, loaded
 * without two of its dependencies until they are used: the AWS SDK's Lambda client (and its
 * credential providers), which it calls only for a Task state without a local handler, and
 * asl-validator (with ajv and jsonata), which it calls only to validate a definition. The local
 * executor gives every task state a handler and validates no definition (the build does:
 * scripts/generate-asl.ts), yet the interpreter `require`s both when it loads: ~0.1 s of every
 * local workflow's start (CPU and wall), a quarter of the CLI's module loading.
 *
 * While the interpreter loads, each of them is a stand-in that loads the real module the first
 * time anything of it is used (a property read, a call): whatever the interpreter does with them,
 * it gets what it would have got. Other code requiring them gets the real modules.
 */
import Module from 'node:module';
import * as path from 'node:path';

type Interpreter = typeof import('aws-local-stepfunctions');

/** The interpreter's dependencies loaded only when used. */
export const DEFERRED_MODULES = [
  '@aws-sdk/client-lambda',
  '@aws-sdk/credential-providers',
  'asl-validator',
] as const;

let interpreter: Interpreter | undefined;

/** aws-local-stepfunctions, loaded (once) with {@link DEFERRED_MODULES} deferred. */
export function loadInterpreter(): Interpreter {
  interpreter ??= withDeferredModules(
    path.dirname(require.resolve('aws-local-stepfunctions')),
    DEFERRED_MODULES,
    () => require('aws-local-stepfunctions') as Interpreter,
  );
  return interpreter;
}

/** Node's module cache (`require.cache`), keyed by file. */
const cache = (Module as unknown as { _cache: Record<string, NodeJS.Module | undefined> })._cache;

/**
 * Runs `load` with each of `names` (as required from `fromDir`) standing in the module cache as a
 * module whose exports load the real module when first used; the stand-ins leave the cache
 * after, so that later `require`s load the real modules. A module already loaded, or one that
 * cannot be resolved, is left as it is.
 */
export function withDeferredModules<T>(fromDir: string, names: readonly string[], load: () => T): T {
  const standIns: string[] = [];
  for (const name of names) {
    let file: string;
    try {
      file = require.resolve(name, { paths: [fromDir] });
    } catch {
      continue;
    }
    if (cache[file]) continue;
    const standIn = new Module(file) as NodeJS.Module & { filename: string; loaded: boolean };
    standIn.filename = file;
    standIn.loaded = true;
    standIn.exports = deferred(file);
    cache[file] = standIn;
    standIns.push(file);
  }
  try {
    return load();
  } finally {
    for (const file of standIns) {
      if (cache[file]?.exports && isStandIn(cache[file].exports)) delete cache[file];
    }
  }
}

const STAND_IN = Symbol('pgferry.deferredModule');

function isStandIn(exports: unknown): boolean {
  return (exports as { [STAND_IN]?: boolean })[STAND_IN] === true;
}

/**
 * The exports of the module `file`, loaded when first used (read, asked for, called or
 * constructed; listing its keys or its prototype, as a bundler's interop helper does when the
 * interpreter loads, does not load it). A function, so that a module whose exports are one
 * (asl-validator's) can be called; an arrow function, so that it has no `prototype` to report.
 */
function deferred(file: string): object {
  let real: object | undefined;
  const load = (): object => {
    if (real === undefined) {
      const entry = cache[file];
      if (entry && isStandIn(entry.exports)) delete cache[file];
      real = require(file) as object;
    }
    return real;
  };
  return new Proxy(() => undefined, {
    get: (_target, key) => (key === STAND_IN ? real === undefined : Reflect.get(load(), key)),
    has: (_target, key) => Reflect.has(load(), key),
    apply: (_target, self, args) => Reflect.apply(load() as (...a: unknown[]) => unknown, self, args),
    construct: (_target, args) => Reflect.construct(load() as new (...a: unknown[]) => object, args),
  });
}

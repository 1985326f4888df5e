/**
 * Loading a processors module for `run` and `worker`: a .ts or .js file whose default export
 * maps types to handlers, `{ 'txn.apply': handler }` or `{ 'txn.apply': { handler, maxAttempts } }`.
 * TypeScript files are loaded through tsx, so users need no build step.
 */

import { spawnSync } from 'node:child_process';
import { access, readFile } from 'node:fs/promises';
import { dirname, extname, join, resolve } from 'node:path';
import { createRequire, Module } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { z } from 'zod';
import { oneLineIssues } from '../core/errors.js';
import type { Batchline } from '../engine/batchline.js';
import { processorOptionsSchema, type Handler, type ProcessorOptions } from '../engine/registry.js';
import { CliError } from './common.js';

const handlerSchema = z.custom<Handler>((value) => typeof value === 'function', 'expected a handler function');
const optionsEntrySchema = processorOptionsSchema.extend({ handler: z.custom<Handler>((value) => typeof value === 'function', 'expected a function') });

/**
 * Whether Node would treat a TypeScript file as CommonJS: `.cts`, or `.ts`/`.tsx` whose nearest
 * package.json does not say `"type": "module"` (npm init's default).
 */
async function isCommonJs(path: string): Promise<boolean> {
  const ext = extname(path);
  if (ext === '.cts') return true;
  if (ext === '.mts') return false;
  for (let dir = dirname(path); ; dir = dirname(dir)) {
    const text = await readFile(join(dir, 'package.json'), 'utf8').catch(() => null);
    if (text !== null) {
      try {
        return (JSON.parse(text) as { type?: unknown }).type !== 'module';
      } catch {
        return true;
      }
    }
    if (dirname(dir) === dir) return true;
  }
}

/**
 * tsx's loaders, registered for the whole process once a TypeScript processors file needs
 * them, not in a namespace of their own: in a namespace, the file's `import ... from
 * 'batchline'` would load a second copy of Batchline beside the one running it.
 */
let tsxEsm: Promise<unknown> | undefined;
let tsxCjs: Promise<unknown> | undefined;

/** An ES-module TypeScript file, through tsx's ESM loader. */
async function importTypeScript(path: string): Promise<{ default?: unknown }> {
  tsxEsm ??= import('tsx/esm/api').then(({ register }) => register());
  await tsxEsm;
  return (await import(pathToFileURL(path).href)) as { default?: unknown };
}

/**
 * A CommonJS TypeScript file, through tsx's require hook (tsx's ESM import of such a file runs
 * it from a data: URL, which would then stand in every stack frame and the `at` of item
 * errors). Its `require('batchline')` is answered with the modules already running: Node 20
 * cannot require an ES module, so tsx would compile a second copy of Batchline to CommonJS,
 * whose classes differ from the running ones and whose source maps garble the stack frames of
 * the running copy (every frame of dist/engine/worker.js at one line).
 */
async function requireTypeScript(path: string): Promise<{ default?: unknown }> {
  tsxCjs ??= (async () => {
    const require = createRequire(import.meta.url);
    for (const entry of ['../index.js', '../client/index.js', '../testing/index.js']) {
      const filename = fileURLToPath(new URL(entry, import.meta.url));
      if (require.cache[filename]) continue;
      const running = new Module(filename);
      running.filename = filename;
      running.exports = await import(entry);
      running.loaded = true;
      require.cache[filename] = running;
    }
    const { register } = await import('tsx/cjs/api');
    register();
  })();
  await tsxCjs;
  return createRequire(path)(path) as { default?: unknown };
}

/**
 * `:line` of a syntax error in a JavaScript module, or nothing. Node's import names no place
 * in the error it throws (only in what it prints when nothing catches it), so the file is
 * checked again with `node --check`, which prints it. (tsx's errors already say where.)
 */
function syntaxErrorLine(path: string, error: unknown): string {
  if (!(error instanceof SyntaxError) || !['.js', '.mjs', '.cjs'].includes(extname(path))) return '';
  const check = spawnSync(process.execPath, ['--check', path], { encoding: 'utf8', timeout: 10_000 });
  const [, checked, line] = /^(.*):(\d+)$/m.exec(check.stderr ?? '') ?? [];
  return checked === path ? `:${line}` : '';
}

/** Imports the module and returns its processors by type. */
export async function loadProcessors(file: string): Promise<Map<string, { handler: Handler; options: ProcessorOptions }>> {
  const path = resolve(file);
  try {
    await access(path);
  } catch {
    throw new CliError(`cannot load processors: ${file} does not exist`);
  }
  let module: { default?: unknown };
  try {
    if (['.ts', '.mts', '.cts', '.tsx'].includes(extname(path))) {
      module = (await isCommonJs(path)) ? await requireTypeScript(path) : await importTypeScript(path);
    } else {
      module = await import(pathToFileURL(path).href);
    }
  } catch (error) {
    const message = (error as Error).message;
    // Node runs such a file as CommonJS, where top-level await does not exist.
    const hint = /top-level await/i.test(message)
      ? `; ${file} is CommonJS here (no "type": "module" in its package.json); rename it to .mts or add "type": "module" to use top-level await`
      : '';
    throw new CliError(`cannot load processors from ${file}${syntaxErrorLine(path, error)}: ${message}${hint}`);
  }
  // tsx may wrap a CommonJS-style default one level deeper.
  let exported = module.default;
  if (exported && typeof exported === 'object' && 'default' in exported && Object.keys(exported).length === 1) {
    exported = (exported as { default: unknown }).default;
  }
  if (!exported || typeof exported !== 'object' || Array.isArray(exported)) {
    throw new CliError(`${file} must export default an object mapping types to handlers, like { 'txn.apply': handler }`);
  }
  const processors = new Map<string, { handler: Handler; options: ProcessorOptions }>();
  for (const [type, entry] of Object.entries(exported)) {
    // An object is checked as options alone, so that zod names the field that is wrong (a
    // union would only say "Invalid input").
    const isObject = entry !== null && typeof entry === 'object' && !Array.isArray(entry);
    const parsed = isObject ? optionsEntrySchema.safeParse(entry) : handlerSchema.safeParse(entry);
    if (!parsed.success) {
      const found = isObject ? oneLineIssues(parsed.error.issues) : `got ${entry === null ? 'null' : Array.isArray(entry) ? 'an array' : typeof entry}`;
      throw new CliError(`${file}: processor ${JSON.stringify(type)} must be a function or { handler, maxAttempts?, timeoutMs?, backoff? }: ${found}`);
    }
    if (typeof parsed.data === 'function') processors.set(type, { handler: parsed.data, options: {} });
    else {
      const { handler, ...options } = parsed.data;
      processors.set(type, { handler, options });
    }
  }
  if (processors.size === 0) throw new CliError(`${file} exports no processors`);
  return processors;
}

/** A loaded processors module: its handlers by type. */
export type Processors = Awaited<ReturnType<typeof loadProcessors>>;

/**
 * Defines each processor `file` exported (loaded with loadProcessors, before the database is
 * opened, so that a bad module creates nothing) on `bl`. Returns the types.
 */
export function defineProcessors(bl: Batchline, file: string, processors: Processors): string[] {
  for (const [type, { handler, options }] of processors) {
    try {
      bl.define(type, handler, options);
    } catch (error) {
      throw new CliError(`${file}: ${(error as Error).message}`);
    }
  }
  return [...processors.keys()];
}

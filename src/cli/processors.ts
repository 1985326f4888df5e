/**
 * Loading a processors module for `run` and `worker`: a .ts or .js file whose default export
 * maps types to handlers, `{ 'txn.apply': handler }` or `{ 'txn.apply': { handler, maxAttempts } }`.
 * TypeScript files are loaded through tsx, so users need no build step.
 */

import { access, readFile } from 'node:fs/promises';
import { dirname, extname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { z } from 'zod';
import { oneLineIssues } from '../core/errors.js';
import type { Batchline } from '../engine/batchline.js';
import { processorOptionsSchema, type Handler, type ProcessorOptions } from '../engine/registry.js';
import { CliError } from './common.js';

const entrySchema = z.union([
  z.custom<Handler>((value) => typeof value === 'function', 'expected a handler function'),
  processorOptionsSchema.extend({ handler: z.custom<Handler>((value) => typeof value === 'function', 'expected a function') }),
]);

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
      if (await isCommonJs(path)) {
        // tsx's ESM import of a CommonJS-context file runs it from a data: URL, which would
        // then stand in every stack frame (and `at` of item errors) instead of its path.
        const { require: tsxRequire } = await import('tsx/cjs/api');
        module = tsxRequire(path, import.meta.url) as { default?: unknown };
      } else {
        const { tsImport } = await import('tsx/esm/api');
        module = await tsImport(pathToFileURL(path).href, import.meta.url);
      }
    } else {
      module = await import(pathToFileURL(path).href);
    }
  } catch (error) {
    const message = (error as Error).message;
    // Node runs such a file as CommonJS, where top-level await does not exist.
    const hint = /top-level await/i.test(message)
      ? `; ${file} is CommonJS here (no "type": "module" in its package.json); rename it to .mts or add "type": "module" to use top-level await`
      : '';
    throw new CliError(`cannot load processors from ${file}: ${message}${hint}`);
  }
  // tsx may wrap a CommonJS-style default one level deeper.
  let exported = module.default;
  if (exported && typeof exported === 'object' && 'default' in exported && Object.keys(exported).length === 1) {
    exported = (exported as { default: unknown }).default;
  }
  if (!exported || typeof exported !== 'object') {
    throw new CliError(`${file} must export default an object mapping types to handlers, like { 'txn.apply': handler }`);
  }
  const processors = new Map<string, { handler: Handler; options: ProcessorOptions }>();
  for (const [type, entry] of Object.entries(exported)) {
    const parsed = entrySchema.safeParse(entry);
    if (!parsed.success) {
      // An object gets zod's field-by-field account; anything else, what it is.
      const found = entry !== null && typeof entry === 'object' ? oneLineIssues(parsed.error.issues) : `got ${entry === null ? 'null' : typeof entry}`;
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

/** Loads the module and defines each of its processors on `bl`. Returns the types. */
export async function defineProcessors(bl: Batchline, file: string): Promise<string[]> {
  const processors = await loadProcessors(file);
  for (const [type, { handler, options }] of processors) {
    try {
      bl.define(type, handler, options);
    } catch (error) {
      throw new CliError(`${file}: ${(error as Error).message}`);
    }
  }
  return [...processors.keys()];
}

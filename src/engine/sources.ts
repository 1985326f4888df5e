/**
 * Reading items from files, streamed: CSV rows become objects of strings keyed by the header
 * (`csv-parse`), JSONL lines become their JSON. Each source knows the line of the last item it
 * gave, so a bad line anywhere in a million-row file is reported as `file:line`.
 */

import { createReadStream } from 'node:fs';
import { access } from 'node:fs/promises';
import { extname } from 'node:path';
import { createInterface } from 'node:readline';
import { parse } from 'csv-parse';
import { InputError } from '../core/errors.js';

export type FileFormat = 'csv' | 'jsonl';

/** A file's items as an async iterable that can say where it is. */
export interface FileSource extends AsyncIterable<unknown> {
  readonly path: string;
  readonly format: FileFormat;
  /** `path:line` of the last item read. */
  where(): string;
}

/** The format a file name implies: `.csv` or `.jsonl`/`.ndjson`. */
export function formatOf(path: string): FileFormat {
  const ext = extname(path).toLowerCase();
  if (ext === '.csv') return 'csv';
  if (ext === '.jsonl' || ext === '.ndjson') return 'jsonl';
  throw new InputError(`cannot tell the format of ${path}: use a .csv, .jsonl or .ndjson file`, { code: 'unknown_format' });
}

async function ensureReadable(path: string): Promise<void> {
  try {
    await access(path);
  } catch (error) {
    throw new InputError(`cannot read ${path}: ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message}`, {
      code: 'file_not_found',
    });
  }
}

class CsvSource implements FileSource {
  readonly format = 'csv' as const;
  private line = 1;
  constructor(readonly path: string) {}

  where(): string {
    return `${this.path}:${this.line}`;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<unknown> {
    await ensureReadable(this.path);
    this.line = 1;
    const parser = createReadStream(this.path).pipe(
      parse({ columns: true, bom: true, skip_empty_lines: true, info: true }),
    );
    try {
      for await (const { record, info } of parser as AsyncIterable<{ record: Record<string, string>; info: { lines: number } }>) {
        this.line = info.lines;
        yield record;
      }
    } catch (error) {
      const { code, lines } = error as { code?: string; lines?: number };
      // An unclosed quote runs to the end of the file; the bad record starts after the last good one.
      if (code === 'CSV_QUOTE_NOT_CLOSED') this.line += 1;
      else if (lines !== undefined) this.line = lines;
      throw new InputError(`malformed CSV: ${(error as Error).message}`, { where: this.where(), code: 'malformed_csv', cause: error });
    }
  }
}

class JsonlSource implements FileSource {
  readonly format = 'jsonl' as const;
  private line = 0;
  constructor(readonly path: string) {}

  where(): string {
    return `${this.path}:${this.line}`;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<unknown> {
    await ensureReadable(this.path);
    const lines = createInterface({ input: createReadStream(this.path), crlfDelay: Infinity });
    this.line = 0;
    for await (const raw of lines) {
      this.line++;
      // Tools on Windows often start UTF-8 files with a byte-order mark.
      const text = this.line === 1 && raw.charCodeAt(0) === 0xfeff ? raw.slice(1) : raw;
      if (text.trim() === '') continue;
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch (error) {
        throw new InputError(`malformed JSON: ${(error as Error).message}`, { where: this.where(), code: 'malformed_jsonl' });
      }
      yield value;
    }
  }
}

/** Opens a CSV or JSONL file as a stream of items; the format comes from the extension unless given. */
export function openFile(path: string, format: FileFormat = formatOf(path)): FileSource {
  return format === 'csv' ? new CsvSource(path) : new JsonlSource(path);
}

/** Counts a file's items in one streamed pass; a malformed line fails here, before anything is written. */
export async function countItems(source: FileSource): Promise<number> {
  let count = 0;
  for await (const _item of source) count++;
  return count;
}

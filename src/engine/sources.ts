/**
 * Reading items from files, streamed: CSV rows become objects of strings keyed by the header
 * (`csv-parse`), JSONL lines become their JSON. Each source knows the line of the last item it
 * gave, so a bad line anywhere in a million-row file is reported as `file:line`.
 */

import { isUtf8 } from 'node:buffer';
import { constants, createReadStream } from 'node:fs';
import { Transform, type Readable } from 'node:stream';
import { access, stat } from 'node:fs/promises';
import { extname } from 'node:path';
import { createInterface } from 'node:readline';
import { CsvError, parse, type Info, type Options, type Parser } from 'csv-parse';
import { InputError } from '../core/errors.js';
import { inexactNumber } from '../core/json-numbers.js';

export type FileFormat = 'csv' | 'jsonl';

/** A file's items as an async iterable that can say where an item came from. */
export interface FileSource extends AsyncIterable<unknown> {
  readonly path: string;
  readonly format: FileFormat;
  /** `path:line` of the item at `index` (0-based), for error messages. Call it for the item just read. */
  where(index: number): string | Promise<string>;
  /** Counts the items in one streamed pass; a malformed line fails here, before anything is written. */
  count(): Promise<number>;
}

/** The format a file name implies: `.csv` or `.jsonl`/`.ndjson`. */
export function formatOf(path: string): FileFormat {
  const ext = extname(path).toLowerCase();
  if (ext === '.csv') return 'csv';
  if (ext === '.jsonl' || ext === '.ndjson') return 'jsonl';
  throw new InputError(`cannot tell the format of ${path}: use a .csv, .jsonl or .ndjson file`, { code: 'unknown_format' });
}

/** Why a file cannot be read, in words, for the errors of the codes Node gives. */
const UNREADABLE: Record<string, string> = {
  ENOENT: 'no such file',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  EISDIR: 'it is a directory',
};

/** The error for a file that cannot be read. */
function unreadable(path: string, error: unknown): InputError {
  const code = (error as NodeJS.ErrnoException).code ?? '';
  return new InputError(`cannot read ${path}: ${UNREADABLE[code] ?? (error as Error).message}`, { code: code === 'ENOENT' ? 'file_not_found' : 'unreadable_file', cause: error });
}

/**
 * Throws an InputError unless `path` is a regular file this process may read. Not a directory,
 * and not a pipe or device (stdin): a file is read more than once (to count, to find an
 * error's line), which a pipe cannot give.
 */
export async function ensureReadable(path: string): Promise<void> {
  try {
    const info = await stat(path);
    if (info.isDirectory()) throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
    if (!info.isFile()) {
      throw new InputError(`cannot read ${path}: it is not a regular file (a pipe or a device such as stdin); save the data to a file first`, { code: 'unreadable_file' });
    }
    await access(path, constants.R_OK);
  } catch (error) {
    throw error instanceof InputError ? error : unreadable(path, error);
  }
}

/** Bytes still to come of a UTF-8 sequence cut at the end of `buf`: 0 to 3. */
function cutSequence(buf: Buffer): number {
  for (let back = 1; back <= Math.min(3, buf.length); back++) {
    const byte = buf[buf.length - back]!;
    if ((byte & 0xc0) === 0x80) continue; // a continuation byte: look further back
    const length = byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : byte >= 0xc0 ? 2 : 1;
    return length > back ? back : 0;
  }
  return 0;
}

/**
 * The 1-based line of the first line of `bytes` that is not UTF-8 (a newline byte is never
 * part of a multi-byte character, so lines can be checked one by one); for bytes known to fail.
 */
export function firstNonUtf8Line(bytes: Buffer): number {
  let line = 1;
  for (let start = 0; ; line++) {
    const end = bytes.indexOf(0x0a, start);
    if (end < 0 || !isUtf8(bytes.subarray(start, end))) return line;
    start = end + 1;
  }
}

/**
 * Bytes checked to be UTF-8 as they stream, passed on unchanged: text in another encoding
 * (Latin-1, Windows-1252) would otherwise be read with U+FFFD in place of every accented
 * letter, and stored so without a word. A sequence cut between chunks waits for its end.
 * A stream starting with a UTF-16 byte-order mark passes unchecked (csv-parse reads it), if
 * `utf16` allows. The error names `where(line)`, the line of the first bad byte.
 */
function utf8Checked(where: (line: number) => string, hint: string, utf16 = false): Transform {
  let line = 1;
  let carry: Buffer | null = null;
  let first = true;
  let passThrough = false;
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      if (first) {
        first = false;
        passThrough = utf16 && chunk.length >= 2 && ((chunk[0] === 0xff && chunk[1] === 0xfe) || (chunk[0] === 0xfe && chunk[1] === 0xff));
      }
      if (passThrough) return done(null, chunk);
      const buf = carry ? Buffer.concat([carry, chunk]) : chunk;
      const body = buf.subarray(0, buf.length - cutSequence(buf));
      carry = body.length < buf.length ? Buffer.from(buf.subarray(body.length)) : null;
      if (!isUtf8(body)) {
        line += firstNonUtf8Line(body) - 1;
        return done(new InputError(`not UTF-8 text (another encoding, such as Latin-1?); ${hint}`, { where: where(line), code: 'not_utf8' }));
      }
      for (let at = body.indexOf(0x0a); at >= 0; at = body.indexOf(0x0a, at + 1)) line++;
      done(null, body);
    },
    flush(done) {
      if (carry) return done(new InputError(`not UTF-8 text: it ends inside a character; ${hint}`, { where: where(line), code: 'not_utf8' }));
      done();
    },
  });
}

/** A file's bytes, checked to be UTF-8 as they stream (see utf8Checked); read errors end the stream as InputErrors. */
function readText(path: string): Readable {
  const raw = createReadStream(path);
  const checked = utf8Checked((line) => `${path}:${line}`, 'save the file as UTF-8', true);
  raw.once('error', (error) => checked.destroy(unreadable(path, error)));
  return raw.pipe(checked);
}

/**
 * The header line's names as the records' keys, each once and none empty: a repeated name
 * would silently keep only its last column's values, and an empty one become a key "".
 */
function csvColumns(header: string[]): string[] {
  const seen = new Set<string>();
  const unnamed = header.findIndex((name) => name.trim() === '');
  if (unnamed >= 0) {
    throw new InputError(`malformed CSV: column ${unnamed + 1} of the header has no name (a comma too many?); each column needs a name`, { code: 'malformed_csv' });
  }
  for (const name of header) {
    if (seen.has(name)) throw new InputError(`malformed CSV: the header names column ${JSON.stringify(name)} twice; each column needs a name of its own`, { code: 'malformed_csv' });
    seen.add(name);
  }
  return header;
}

const CSV_OPTIONS = { bom: true, skip_empty_lines: true } as const;

/**
 * How many lines csv-parse counts too many for a record: it counts a line at every CR inside a
 * quoted field and another at the LF of a CRLF, so a Windows file whose fields hold line breaks
 * would be reported lines too far down. Lines here are LF-terminated, as editors number them.
 * (Unquoted fields cannot hold a CR, so the record's values are where to count.)
 */
function extraLines(record: Record<string, string> | string[] | undefined): number {
  let extra = 0;
  if (!record) return extra;
  for (const value of Array.isArray(record) ? record : Object.values(record)) {
    for (let at = value.indexOf('\r'); at >= 0; at = value.indexOf('\r', at + 1)) extra++;
  }
  return extra;
}

/**
 * csv-parse's message without its own line counting (the location is given apart, corrected;
 * csv-parse's "at line N" can be in the middle, as in "Invalid Closing Quote: got "x" at line 3
 * instead of …"), and one wording for a row of the wrong length or a quote in mid-field whichever
 * pass (with or without the header's names) found it.
 */
function csvMessage(error: CsvError): string {
  const length = /^Invalid Record Length: (?:expect|columns length is) (\d+), got (\d+)/.exec(error.message);
  if (length) return `the row has ${length[2]} fields where the header has ${length[1]}`;
  // csv-parse names the field by its header name when reading and by its index when counting.
  const opening = error.code === 'INVALID_OPENING_QUOTE' ? / value is (".*")$/.exec(error.message) : null;
  if (opening) return `invalid opening quote: a quote inside a field that does not start with one (the field so far is ${opening[1]}); quote the whole field and double each quote in it`;
  return error.message.replace(/ (?:at|on) line \d+/g, '').replace(/\.$/, '');
}

/**
 * csv-parse's line count corrected by the records seen (see extraLines), as a running tally, and
 * where a record that fails starts.
 *
 * A malformed record is reported at the line where it starts, whatever the error: the first line
 * after the last good record that csv-parse did not skip as empty. Where csv-parse stops can be
 * far down (an unclosed quote runs to the end of the input), and its count of the bad record's
 * own lines is off by the CRs it holds, which cannot be known for a record it never finished.
 */
class CsvLines {
  private extra = 0;
  /** Where the last good record (the header counts) ended: 0 before the first. */
  private end = 0;
  /** Empty lines csv-parse had skipped by then. */
  private empty = 0;

  /** The line where `record` ends; `info` is csv-parse's, taken as it handed the record over. */
  ended(record: Record<string, string> | string[] | undefined, info: Pick<Info, 'lines' | 'empty_lines'>): number {
    this.extra += extraLines(record);
    this.end = info.lines - this.extra;
    this.empty = info.empty_lines;
    return this.end;
  }

  /**
   * The line where the record csv-parse failed on starts. Empty lines are skipped only between
   * records (inside quotes they are part of a field), so those it skipped since the last good
   * record all come before the bad one.
   */
  failed(error: CsvError): number {
    const empty = typeof error.empty_lines === 'number' ? error.empty_lines : this.empty;
    return this.end + 1 + Math.max(0, empty - this.empty);
  }
}

/**
 * A csv-parse parser of records keyed by the header's names (checked by csvColumns), with `info`
 * as asked. The header is a record for `tallies` too: its line ends where the first record may
 * start, and its CRs count (see extraLines). Each tally takes it once, when parsed.
 */
function csvParser<U>(options: Omit<Options<U, U>, 'columns'>, ...tallies: CsvLines[]): Parser {
  const columns = (header: string[]) => {
    const names = csvColumns(header);
    for (const lines of tallies) lines.ended(header, parser.info);
    return names;
  };
  // The typings tie `on_record`'s record to `columns`' keys; ours are known only at run time.
  const parser: Parser = parse({ ...CSV_OPTIONS, ...options, columns } as Options);
  return parser;
}

/** A file's text (checked UTF-8) piped into a csv-parse parser, whose iteration then also fails on read errors. */
function csvRows(path: string, parser: Transform): Transform {
  const input = readText(path);
  input.once('error', (error) => parser.destroy(error));
  return input.pipe(parser);
}

/**
 * CSV through csv-parse. Items are read without csv-parse's per-record `info`, which doubles
 * the parsing cost; the line of a record is found again only when an error needs it.
 */
class CsvSource implements FileSource {
  readonly format = 'csv' as const;
  constructor(readonly path: string) {}

  async where(index: number): Promise<string> {
    return `${this.path}:${(await this.lineOf(index + 1)).line}`;
  }

  /**
   * Line where record `records` (1-based, header excluded) ends (1, the header, for 0), and
   * the tally of the records parsed by then. Records are tallied as csv-parse parses them, not
   * as they are read: a stream that fails drops the records it had parsed but not handed over,
   * and where a bad record starts is known only from the good one just before it.
   */
  private async lineOf(records: number): Promise<{ line: number; lines: CsvLines }> {
    const lines = new CsvLines();
    if (records === 0) return { line: 1, lines };
    let parsed = 0;
    let line = 1;
    const tally = (record: Record<string, string>, info: Info) => {
      const end = lines.ended(record, info);
      if (++parsed <= records) line = end;
      return record;
    };
    const parser = csvRows(this.path, csvParser({ on_record: tally }, lines));
    try {
      for await (const _record of parser) {
        if (parsed >= records) break;
      }
    } catch {
      // The scan stops at the same malformed record; the last good line is what we want.
    } finally {
      parser.destroy();
    }
    return { line, lines };
  }

  private async rethrow(error: unknown): Promise<never> {
    // Ours: from reading the file (it says where), or from the header (line 1).
    if (error instanceof InputError) throw error.where ? error : new InputError(error.message, { where: `${this.path}:1`, code: error.code });
    // Not csv-parse's verdict on the text (a stream's own failure): not for us to call malformed.
    if (!(error instanceof CsvError)) throw error;
    // The file is scanned again up to the error, so that every good record before it corrects
    // csv-parse's count (the failed stream may have dropped some of them unread).
    const { lines } = await this.lineOf(Number.POSITIVE_INFINITY);
    throw new InputError(`malformed CSV: ${csvMessage(error)}`, { where: `${this.path}:${lines.failed(error)}`, code: 'malformed_csv', cause: error });
  }

  async *[Symbol.asyncIterator](): AsyncIterator<unknown> {
    await ensureReadable(this.path);
    const parser = csvRows(this.path, csvParser({}));
    try {
      for await (const record of parser as AsyncIterable<Record<string, string>>) {
        yield record;
      }
    } catch (error) {
      await this.rethrow(error);
    }
  }

  async count(): Promise<number> {
    await ensureReadable(this.path);
    // Arrays rather than objects: a third cheaper, and csv-parse checks column counts either way.
    const parser = csvRows(this.path, parse(CSV_OPTIONS));
    let rows = 0;
    try {
      for await (const _row of parser) rows++;
    } catch (error) {
      await this.rethrow(error);
    }
    return Math.max(0, rows - 1);
  }
}

class JsonlSource implements FileSource {
  readonly format = 'jsonl' as const;
  private line = 0;
  constructor(readonly path: string) {}

  /** JSONL counts lines as it reads, so the item just read is at the current line. */
  where(): string {
    return `${this.path}:${this.line}`;
  }

  async count(): Promise<number> {
    let items = 0;
    for await (const _item of this) items++;
    return items;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<unknown> {
    await ensureReadable(this.path);
    const lines = createInterface({ input: readText(this.path), crlfDelay: Infinity });
    this.line = 0;
    for await (const raw of lines) {
      this.line++;
      // Tools on Windows often start UTF-8 files with a byte-order mark.
      const text = this.line === 1 && raw.charCodeAt(0) === 0xfeff ? raw.slice(1) : raw;
      if (text.trim() === '') continue;
      yield parseJsonLine(text, this.where());
    }
  }
}

function parseJsonLine(text: string, where: string): unknown {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new InputError(`malformed JSON: ${(error as Error).message}`, { where, code: 'malformed_jsonl' });
  }
  const inexact = inexactNumber(text);
  if (inexact !== null) {
    throw new InputError(
      `the number ${inexact} cannot be kept exactly (JSON numbers are read as 64-bit floats): send it as a string, "${inexact}"`,
      { where, code: 'inexact_number' },
    );
  }
  return value;
}

/** Items read once from a stream (an HTTP body): no second pass, so errors name the line as counted so far. */
export interface StreamSource extends AsyncIterable<unknown> {
  where(index: number): string;
}

/** Longest line or CSV record an upload may have: an item's limit (1 MiB) with room for its framing. */
const MAX_LINE_CHARS = 2 << 20;

/**
 * The stream's own failure (a dropped connection), as an input error: it is the client's, not the
 * database's. Only for that: a body that arrived whole but is malformed is a `malformed_csv`.
 */
function bodyEnded(error: unknown, where: string): InputError {
  // Already ours (the server cut off an idle upload): keep its code.
  if (error instanceof InputError) return error;
  return new InputError(`the request body ended early: ${(error as Error).message}`, { where, code: 'body_aborted', cause: error });
}

/**
 * Reads CSV or NDJSON items from a stream in one pass, for uploads. A stream that errors or
 * ends early (a dropped connection) makes iteration throw, so a submission reading it rolls
 * back. Stopping early (a bad line) leaves the stream undestroyed, so the server can still
 * drain it and answer. A line longer than 2 MiB is refused (payload_too_large) without
 * buffering more. `label` names the source in errors (`request body:17`).
 */
export function streamItems(input: Readable, format: FileFormat, label = 'request body'): StreamSource {
  let line = 0;
  const where = () => `${label}:${line}`;
  let inputError: unknown;
  input.once('error', (error) => (inputError = error));
  /**
   * The body's bytes checked to be UTF-8 (as files are), for one iteration. The input's own
   * failures (an error, a connection closed before the body ended) end the checked stream
   * too; unpiping it in the end leaves the input undestroyed for the server to drain.
   */
  const checkedInput = () => {
    const checked = utf8Checked((at) => `${label}:${at}`, 'send the body as UTF-8');
    input.once('error', (error) => checked.destroy(error));
    input.once('close', () => input.readableEnded || checked.destroyed || checked.destroy(inputError instanceof Error ? inputError : new Error('aborted')));
    return { checked: input.pipe(checked), release: () => input.unpipe(checked) };
  };
  if (format === 'csv') {
    return {
      where,
      async *[Symbol.asyncIterator]() {
        // Records parsed, some of which may not have been read yet when an error ends the stream
        // (where a bad record starts comes from these), and records read (the line of the last).
        const parsedLines = new CsvLines();
        const readLines = new CsvLines();
        const parser = csvParser(
          {
            info: true,
            max_record_size: MAX_LINE_CHARS,
            // With `info`, csv-parse hands it `{ record, info }`.
            on_record: (parsed: { record: Record<string, string> }, info) => (parsedLines.ended(parsed.record, info), parsed),
          },
          parsedLines,
          readLines,
        );
        // pipe, not pipeline: a parse error must not destroy the request (the answer still has
        // to be written); an input error is handed to the parser by hand.
        const { checked, release } = checkedInput();
        checked.pipe(parser);
        checked.once('error', (error) => parser.destroy(error));
        try {
          for await (const { record, info } of parser as AsyncIterable<{ record: Record<string, string>; info: Info }>) {
            line = readLines.ended(record, info);
            yield record;
          }
        } catch (error) {
          if (error instanceof InputError && error.code === 'not_utf8') throw error;
          if (error instanceof InputError && error.code === 'malformed_csv') throw new InputError(error.message, { where: `${label}:1`, code: error.code });
          // csv-parse's verdict on text that arrived (a body cut off mid-quote never reaches the
          // parser's end, so it fails with the input's error instead). Its codes are not all
          // prefixed CSV_ (INVALID_OPENING_QUOTE is not), hence the class.
          if (error instanceof CsvError) {
            line = parsedLines.failed(error);
            if (error.code === 'CSV_MAX_RECORD_SIZE') throw new InputError(`a CSV record is longer than ${MAX_LINE_CHARS} characters`, { where: where(), code: 'payload_too_large' });
            throw new InputError(`malformed CSV: ${csvMessage(error)}`, { where: where(), code: 'malformed_csv', cause: error });
          }
          throw bodyEnded(inputError ?? error, where());
        } finally {
          checked.unpipe(parser);
          release();
        }
      },
    };
  }
  return {
    where,
    async *[Symbol.asyncIterator]() {
      const { checked, release } = checkedInput();
      checked.setEncoding('utf8');
      let rest = '';
      const lineOf = (raw: string) => {
        line++;
        const text = line === 1 && raw.charCodeAt(0) === 0xfeff ? raw.slice(1) : raw;
        return text.trim() === '' ? undefined : parseJsonLine(text, where());
      };
      try {
        for await (const chunk of checked.iterator({ destroyOnReturn: false }) as AsyncIterable<string>) {
          const lines = (rest + chunk).split('\n');
          rest = lines.pop()!;
          if (rest.length > MAX_LINE_CHARS) {
            line++;
            throw new InputError(`a line is longer than ${MAX_LINE_CHARS} characters`, { where: where(), code: 'payload_too_large' });
          }
          for (const raw of lines) {
            const value = lineOf(raw.endsWith('\r') ? raw.slice(0, -1) : raw);
            if (value !== undefined) yield value;
          }
        }
      } catch (error) {
        if (error instanceof InputError) throw error;
        throw bodyEnded(inputError ?? error, where());
      } finally {
        release();
      }
      const value = lineOf(rest);
      if (value !== undefined) yield value;
    },
  };
}

/** Opens a CSV or JSONL file as a stream of items; the format comes from the extension unless given. */
export function openFile(path: string, format: FileFormat = formatOf(path)): FileSource {
  return format === 'csv' ? new CsvSource(path) : new JsonlSource(path);
}

/** Counts a file's items in one streamed pass; a malformed line fails here, before anything is written. */
export function countItems(source: FileSource): Promise<number> {
  return source.count();
}

/**
 * The transactions scenario of the batch framework Batchline replaces: random DEPOSIT and
 * WITHDRAWAL rows in a CSV, and the balance computed straight from the file, independently of
 * the engine, so the demo compares two separate computations.
 */

import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { once } from 'node:events';
import { parse } from 'csv-parse';
import { PermanentError } from '../core/errors.js';
import { seededRandom } from '../core/random.js';
import type { ItemContext } from '../engine/item-context.js';

export interface Transaction {
  id: string;
  type: string;
  amount: string;
  account: string;
}

/** Writes `items` random transactions (amounts 0.01-1,000.00) to a CSV file. */
export async function writeTransactions(path: string, items: number, seed: number): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const random = seededRandom(seed);
  const out = createWriteStream(path);
  out.write('id,type,amount,account\n');
  for (let i = 1; i <= items; i++) {
    const cents = 1 + Math.floor(random() * 100_000);
    const type = random() < 0.55 ? 'DEPOSIT' : 'WITHDRAWAL';
    const account = `ACC-${String(1 + Math.floor(random() * 1_000)).padStart(4, '0')}`;
    const line = `TXN-${String(i).padStart(7, '0')},${type},${Math.floor(cents / 100)}.${String(cents % 100).padStart(2, '0')},${account}\n`;
    if (!out.write(line)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
}

/** Balance straight from the file: deposits minus withdrawals, in integer cents. */
export async function balanceOfFile(path: string): Promise<bigint> {
  let cents = 0n;
  const rows = createReadStream(path).pipe(parse({ columns: true }));
  for await (const row of rows as AsyncIterable<Transaction>) {
    const value = BigInt(row.amount.replace('.', ''));
    cents += row.type === 'DEPOSIT' ? value : -value;
  }
  return cents;
}

const AMOUNT = /^\d{1,12}\.\d{2}$/;

/** The demo's processor: validates a transaction and adds it to the batch's balance. */
export async function applyTransaction(row: Transaction, ctx: ItemContext): Promise<{ id: string }> {
  if (!AMOUNT.test(row.amount)) throw new PermanentError(`${row.id}: amount ${JSON.stringify(row.amount)} is not a positive amount with two decimals`);
  if (row.type === 'DEPOSIT') ctx.aggregate('balance', row.amount);
  else if (row.type === 'WITHDRAWAL') ctx.aggregate('balance', `-${row.amount}`);
  else throw new PermanentError(`${row.id}: unknown transaction type ${JSON.stringify(row.type)}`);
  return { id: row.id };
}

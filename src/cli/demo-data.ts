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

/** `items` random transactions (amounts 0.01-1,000.00), the same ones for the same seed. */
export function* transactions(items: number, seed: number): Generator<Transaction> {
  const random = seededRandom(seed);
  for (let i = 1; i <= items; i++) {
    const cents = 1 + Math.floor(random() * 100_000);
    const type = random() < 0.55 ? 'DEPOSIT' : 'WITHDRAWAL';
    const account = `ACC-${String(1 + Math.floor(random() * 1_000)).padStart(4, '0')}`;
    yield { id: `TXN-${String(i).padStart(7, '0')}`, type, amount: `${Math.floor(cents / 100)}.${String(cents % 100).padStart(2, '0')}`, account };
  }
}

/** Writes `items` random transactions (see `transactions`) to a CSV file. */
export async function writeTransactions(path: string, items: number, seed: number): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const out = createWriteStream(path);
  out.write('id,type,amount,account\n');
  for (const t of transactions(items, seed)) {
    if (!out.write(`${t.id},${t.type},${t.amount},${t.account}\n`)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
}

/** Balance straight from the file: deposits minus withdrawals, in integer cents. */
export async function balanceOfFile(path: string): Promise<bigint> {
  let cents = 0n;
  const rows = createReadStream(path).pipe(parse({ columns: true }));
  for await (const row of rows as AsyncIterable<Transaction>) cents += signedCents(row);
  return cents;
}

/** A transaction's effect on the balance in integer cents: deposits add, withdrawals subtract. */
export function signedCents(t: Pick<Transaction, 'type' | 'amount'>): bigint {
  const value = BigInt(t.amount.replace('.', ''));
  return t.type === 'DEPOSIT' ? value : -value;
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

/**
 * API keys: `bl_<id>_<secret>`. The id finds the key; only a SHA-256 of the secret is stored,
 * and a presented secret is compared with it in constant time. Secrets are 192 random bits,
 * so a fast hash is enough (there is nothing to guess, unlike a password).
 */

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { ApiKey } from '../core/types.js';
import type { Store } from '../store/store.js';

const KEY = /^bl_([0-9a-f]{12})_([A-Za-z0-9_-]{32})$/;

function hashOf(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

/** Creates a key for `tenant` and returns it with its token, which is shown once and never stored. */
export async function createKey(store: Store, params: { tenant: string; admin: boolean; name?: string }): Promise<{ key: ApiKey; token: string }> {
  const id = randomBytes(6).toString('hex');
  const secret = randomBytes(24).toString('base64url');
  const key = await store.keyCreate({ id, name: params.name ?? `${params.tenant}${params.admin ? ' (admin)' : ''}`, tenant: params.tenant, admin: params.admin, hash: hashOf(secret) });
  return { key, token: `bl_${id}_${secret}` };
}

/** The live key a token belongs to, or null for a malformed, unknown or revoked token. */
export async function verifyKey(store: Store, token: string): Promise<ApiKey | null> {
  const match = KEY.exec(token);
  if (!match) return null;
  const found = await store.keyFind({ id: match[1]! });
  if (!found || found.revokedAt) return null;
  const presented = Buffer.from(hashOf(match[2]!), 'hex');
  const stored = Buffer.from(found.hash, 'hex');
  if (presented.length !== stored.length || !timingSafeEqual(presented, stored)) return null;
  const { hash: _hash, ...key } = found;
  return key;
}

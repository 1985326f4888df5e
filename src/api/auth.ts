/**
 * Who is calling. Once any API key has ever been created in the store, every request (but
 * the liveness probe) needs one: `Authorization: Bearer bl_...`. Before that, on a laptop with
 * no keys, requests act as an admin of the default tenant (and `serve` refuses to listen
 * beyond loopback in that state).
 *
 * A tenant key sees and acts on its tenant's batches only; an admin key sees every tenant.
 */

import type { FastifyRequest } from 'fastify';
import type { Store } from '../store/store.js';
import { verifyKey } from './keys.js';
import { problem, ProblemError } from './problem.js';

export interface Caller {
  /** The key's id; null when the API runs without keys. */
  keyId: string | null;
  /** Tenant whose batches new submissions belong to. */
  tenant: string;
  /** Sees and acts on every tenant's batches. */
  admin: boolean;
}

declare module 'fastify' {
  interface FastifyRequest {
    caller: Caller;
  }
}

/** Resolves callers against the store's keys. */
export class Authenticator {
  /** Latches to true: once keys exist, they are required for as long as this process runs. */
  private keysRequired = false;

  constructor(
    private readonly store: Store,
    private readonly defaultTenant: string,
  ) {}

  /** Whether requests need a key (any key was ever created). */
  async required(): Promise<boolean> {
    if (!this.keysRequired) this.keysRequired = await this.store.keysExist();
    return this.keysRequired;
  }

  /** The caller of a request, or a 401 problem. */
  async authenticate(request: FastifyRequest): Promise<Caller> {
    const header = request.headers.authorization;
    if (!(await this.required())) return { keyId: null, tenant: this.defaultTenant, admin: true };
    if (!header) throw new ProblemError(problem('UNAUTHORIZED', 'send an API key: Authorization: Bearer <key> (create one with `batchline keys create`)'));
    // Node keeps the first of two Authorization headers; which key acts must not be a guess.
    const given = request.raw.rawHeaders.filter((name, i) => i % 2 === 0 && name.toLowerCase() === 'authorization').length;
    if (given > 1) throw new ProblemError(problem('UNAUTHORIZED', `${given} Authorization headers were sent; send one`));
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    const key = match ? await verifyKey(this.store, match[1]!) : null;
    if (!key) throw new ProblemError(problem('UNAUTHORIZED', 'the API key is malformed, unknown or revoked'));
    return { keyId: key.id, tenant: key.tenant, admin: key.admin };
  }
}

/** Whether a caller's key still works (not revoked or deleted since it was checked). */
export async function stillValid(store: Store, caller: Caller): Promise<boolean> {
  if (caller.keyId === null) return true;
  const key = await store.keyFind({ id: caller.keyId });
  return key !== null && key.revokedAt === null;
}

/** The tenant filter for reads and actions: undefined (every tenant) for admins. */
export function tenantScope(caller: Caller): string | undefined {
  return caller.admin ? undefined : caller.tenant;
}

/**
 * The tenant a listing (or a prune) covers when the caller asks for `asked`: any tenant for
 * an admin, its own for a tenant key. A tenant key naming another tenant is refused (403)
 * rather than shown an empty list, which would read as "that tenant has no batches"; the
 * refusal says nothing about the other tenant, whose name came from the caller.
 */
export function listingScope(caller: Caller, asked: string | undefined, doing: 'list' | 'prune' = 'list'): string | undefined {
  if (asked === undefined || caller.admin) return asked ?? tenantScope(caller);
  if (asked !== caller.tenant) {
    throw new ProblemError(problem('FORBIDDEN', `this API key belongs to tenant ${JSON.stringify(caller.tenant)}; it cannot ${doing} tenant ${JSON.stringify(asked)} (use an admin key)`));
  }
  return asked;
}

/** Host names a keyless server answers to: its loopback names, never a name a web page chose. */
export function isLoopbackHost(hostname: string | undefined): boolean {
  // No Host at all (HTTP/1.0 tools) is not a browser, which always names the host it thinks it asks.
  if (!hostname) return true;
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  return host === 'localhost' || host.endsWith('.localhost') || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

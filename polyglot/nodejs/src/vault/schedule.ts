/**
 * The token schedule, pure (the unit tests pin it down), as libs/devstack_client/vault.py:
 * - renew at `fraction` (2/3) of the lease granted by the last login or renewal;
 * - log in again instead when the token is not renewable, when the last renewal granted less than
 *   the login did (the max TTL is near: renewing cannot extend it), or when it has expired.
 */

export interface TokenLease {
  /** Seconds granted by the last login or renewal (0: never expires). */
  readonly ttl: number;
  /** Seconds granted by the login (what a renewal should give again). */
  readonly loginTtl: number;
  readonly renewable: boolean;
  /** When it was granted, in seconds on the monotonic clock. */
  readonly refreshedAt: number;
}

export interface Refresh {
  readonly action: "renew" | "login" | "none";
  readonly at: number;
}

/** A renewal granting under 90% of the login's TTL means the max TTL is near. */
export const CAPPED_TOLERANCE = 0.9;

export function expiresAt(lease: TokenLease): number {
  return lease.ttl <= 0 ? Infinity : lease.refreshedAt + lease.ttl;
}

export function planRefresh(lease: TokenLease, now: number, fraction: number): Refresh {
  if (lease.ttl <= 0) return { action: "none", at: Infinity };
  const at = lease.refreshedAt + fraction * lease.ttl;
  if (now >= expiresAt(lease)) return { action: "login", at: now };
  const capped = lease.ttl < lease.loginTtl * CAPPED_TOLERANCE;
  if (capped || !lease.renewable) return { action: "login", at };
  return { action: "renew", at };
}

/** Exponential backoff with jitter: between half and all of min(max, initial * 2^(attempt-1)). */
export function backoffDelay(attempt: number, initial: number, maximum: number, random: () => number = Math.random): number {
  const ceiling = Math.min(maximum, initial * 2 ** Math.max(0, attempt - 1));
  return ceiling / 2 + (random() * ceiling) / 2;
}

/** Seconds on a monotonic clock. */
export function monotonic(): number {
  return performance.now() / 1000;
}

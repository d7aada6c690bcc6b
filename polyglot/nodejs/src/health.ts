/**
 * Health: one probe per dependency, all run at once, each within its own budget; the report is the
 * contract's HealthReport (status is the worst check). No probe calls Vault: the Vault check reads
 * the client's own state (reachability from its last contact, token, stale secrets).
 */
import { DependencyTimeout, DevStackError } from "./errors.js";
import type { Metrics } from "./metrics.js";

export type HealthStatus = "healthy" | "degraded" | "unhealthy";
export type CheckError = "unavailable" | "timeout" | "not_ready";

export interface CheckOutcome {
  readonly status: HealthStatus;
  readonly error?: CheckError;
  readonly reason?: string;
}

export interface CheckResult {
  status: HealthStatus;
  latency_ms: number;
  error: CheckError | null;
}

export interface HealthReport {
  status: HealthStatus;
  checks: Record<string, CheckResult>;
}

export type Probe = () => Promise<CheckOutcome | undefined>;

const ORDER: Record<HealthStatus, number> = { healthy: 0, degraded: 1, unhealthy: 2 };

export function aggregate(statuses: Iterable<HealthStatus>): HealthStatus {
  let worst: HealthStatus = "healthy";
  for (const status of statuses) if (ORDER[status] > ORDER[worst]) worst = status;
  return worst;
}

export function httpStatus(report: HealthReport): 200 | 503 {
  return report.status === "healthy" ? 200 : 503;
}

class ProbeTimeout extends Error {}

export class HealthChecker {
  constructor(
    readonly probes: ReadonlyMap<string, Probe>,
    private readonly timeoutSeconds: number,
    private readonly metrics?: Metrics,
  ) {}

  has(name: string): boolean {
    return this.probes.has(name);
  }

  /** Run the probes (all, or those named) concurrently; never rejects. */
  async check(names?: readonly string[]): Promise<HealthReport> {
    const selected = names === undefined ? [...this.probes.keys()] : names.filter((n) => this.probes.has(n));
    const results = await Promise.all(selected.map((name) => this.checkOne(name)));
    const checks: Record<string, CheckResult> = {};
    selected.forEach((name, i) => {
      const result = results[i];
      if (result !== undefined) checks[name] = result;
    });
    return { status: aggregate(Object.values(checks).map((c) => c.status)), checks };
  }

  async checkOne(name: string): Promise<CheckResult> {
    const probe = this.probes.get(name);
    const started = performance.now();
    let outcome: CheckOutcome;
    let timer: NodeJS.Timeout | undefined;
    try {
      if (probe === undefined) throw new Error(`no probe named ${name}`);
      const deadline = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new ProbeTimeout()), this.timeoutSeconds * 1000);
        timer.unref();
      });
      outcome = (await Promise.race([probe(), deadline])) ?? { status: "healthy" };
    } catch (error) {
      if (error instanceof ProbeTimeout || error instanceof DependencyTimeout) outcome = { status: "unhealthy", error: "timeout" };
      else if (error instanceof DevStackError) outcome = { status: "unhealthy", error: "unavailable", reason: error.message };
      else outcome = { status: "unhealthy", error: "unavailable" };
    } finally {
      clearTimeout(timer);
    }
    const elapsed = (performance.now() - started) / 1000;
    this.metrics?.recordHealth(name, outcome.status, elapsed);
    return {
      status: outcome.status,
      latency_ms: Math.round(elapsed * 1_000_000) / 1000,
      error: outcome.status === "healthy" ? null : (outcome.error ?? "unavailable"),
    };
  }
}

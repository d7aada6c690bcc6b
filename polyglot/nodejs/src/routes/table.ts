/**
 * The route table: each operation registered under its contract path template (`/examples/cache/{key}`),
 * which labels its metrics and answers 405 (with Allow) for the methods a path lacks.
 */
import type { Express, NextFunction, Request, RequestHandler, Response } from "express";

import type { Metrics } from "../metrics.js";
import type { Stack } from "../stack.js";
import { bodyGate, routed } from "../http/middleware.js";

export type Method = "GET" | "POST" | "PUT" | "DELETE";

export interface RouteContext {
  /** The stack, once started (routes are registered before it is). */
  readonly stack: () => Stack;
  readonly metrics: Metrics;
  readonly bodyLimit: number;
  readonly implementation: string;
}

export type Handler = (req: Request, res: Response) => Promise<void> | void;

interface Entry {
  readonly template: string;
  readonly pattern: RegExp;
  readonly methods: Set<Method>;
}

/** `/examples/cache/{key}` as an Express path (`/examples/cache/:key`). */
export function expressPath(template: string): string {
  return template.replace(/\{([A-Za-z_]+)\}/g, ":$1");
}

export class RouteTable {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly app: Express,
    private readonly ctx: RouteContext,
  ) {}

  add(method: Method, template: string, handler: Handler, options: { body?: boolean } = {}): void {
    let entry = this.entries.get(template);
    if (entry === undefined) {
      const source = template.replace(/[.*+?^$()|[\]\\]/g, "\\$&").replace(/\{[A-Za-z_]+\}/g, "[^/]+");
      entry = { template, pattern: new RegExp(`^${source}$`), methods: new Set() };
      this.entries.set(template, entry);
    }
    entry.methods.add(method);
    const chain: RequestHandler[] = [routed(this.ctx.metrics, template)];
    if (options.body === true) chain.push(bodyGate(this.ctx.bodyLimit));
    const run: RequestHandler = async (req: Request, res: Response, next: NextFunction) => {
      try {
        await handler(req, res);
      } catch (error) {
        next(error);
      }
    };
    const path = expressPath(template);
    const register = { GET: this.app.get, POST: this.app.post, PUT: this.app.put, DELETE: this.app.delete }[method].bind(this.app);
    register(path, ...chain, run);
  }

  /** Every method some route serves on this raw path, sorted (an empty list: no such path). */
  allowed(path: string): string[] {
    const found = new Set<Method>();
    for (const entry of this.entries.values()) if (entry.pattern.test(path)) for (const m of entry.methods) found.add(m);
    // HEAD is served wherever GET is (Express answers it from the GET route, without a body).
    const methods: string[] = [...found];
    if (found.has("GET")) methods.push("HEAD");
    return methods.sort();
  }
}

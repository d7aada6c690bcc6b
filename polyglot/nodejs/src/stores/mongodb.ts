/** The MongoDB protocol (FerretDB here): one MongoClient (it pools connections), TLS with the CA file. */
import type { Db, MongoClient, ObjectId } from "mongodb";

import { NotFound } from "../errors.js";
import type { KvSecret } from "../vault/client.js";
import { MAX_PAGE, type Item, type ItemCreate, type ItemList, type ItemRepository, type QueryResult } from "./models.js";
import { lazyModule, ManagedPool, secretText, tlsEnabled } from "./pool.js";
import { formatInstant, fromDate, now } from "./time.js";

const driver = lazyModule(() => import("mongodb"));
/** The driver once loaded (for the error check, which only runs after a client was built). */
let loaded: typeof import("mongodb") | undefined;

export interface MongoHandle {
  readonly client: MongoClient;
  readonly db: Db;
  /** Its topology closed for good (see onConnectionError): replaced at the next use. */
  broken: boolean;
}

export class MongoPool extends ManagedPool<MongoHandle> {
  readonly name = "mongodb" as const;

  protected async build(secret: KvSecret): Promise<MongoHandle> {
    const { MongoClient } = (loaded = await driver());
    const { host, port } = this.ctx.settings.endpoints.mongodb;
    const s = this.ctx.settings;
    const database = secretText(secret, "database");
    const tls = tlsEnabled(secret);
    const client = new MongoClient(`mongodb://${host}:${port}/`, {
      auth: { username: secretText(secret, "user"), password: secretText(secret, "password") },
      authSource: database,
      tls,
      ...(tls ? { tlsCAFile: this.ctx.caFile } : {}),
      serverSelectionTimeoutMS: s.connectTimeout * 1000,
      connectTimeoutMS: s.connectTimeout * 1000,
      socketTimeoutMS: s.operationTimeout * 1000,
      maxPoolSize: s.poolMaxSize,
      minPoolSize: 0,
      appName: "devstack_nodejs",
      directConnection: true,
    });
    return { client, db: client.db(database), broken: false };
  }

  protected async warmUp(handle: MongoHandle): Promise<void> {
    await handle.db.command({ ping: 1 });
  }

  protected async closeClient(handle: MongoHandle): Promise<void> {
    await handle.client.close();
  }

  protected override isDead(handle: MongoHandle): boolean {
    return handle.broken;
  }

  /** A MongoClient whose connection attempt failed (the server was down when it first
   *  connected) closes its topology and answers "Topology is closed" to every later call, even
   *  once the server is back: such a client is replaced. */
  protected override onConnectionError(handle: MongoHandle, error: unknown): void {
    if (loaded === undefined) return;
    if (error instanceof loaded.MongoServerSelectionError || error instanceof loaded.MongoTopologyClosedError) {
      handle.broken = true;
    }
  }

  protected override isAuthError(error: unknown): boolean {
    return loaded !== undefined && error instanceof loaded.MongoServerError && error.code === 18;
  }
}

interface ItemDoc {
  _id: ObjectId;
  name: string;
  quantity?: number;
  created_at: Date;
}

function toItem(doc: ItemDoc): Item {
  return { id: doc._id.toHexString(), name: doc.name, quantity: doc.quantity ?? 0, created_at: formatInstant(fromDate(doc.created_at)) };
}

async function objectId(id: string): Promise<ObjectId> {
  if (!/^[0-9a-fA-F]{24}$/.test(id)) throw new NotFound("no mongodb item has this id");
  return (await driver()).ObjectId.createFromHexString(id);
}

export class MongoItems implements ItemRepository {
  readonly backend = "mongodb" as const;
  private readonly collection = "items";

  constructor(private readonly pool: MongoPool) {}

  async query(): Promise<QueryResult> {
    return this.pool.operation("query", async ({ client, db }) => {
      const build = await db.command({ buildInfo: 1 });
      const status = await client.db("admin").command({ hello: 1 });
      const time = status.localTime as unknown;
      return {
        database: "mongodb" as const,
        server_version: String(build.version ?? ""),
        server_time: formatInstant(time instanceof Date ? fromDate(time) : now()),
      };
    });
  }

  async create(item: ItemCreate): Promise<Item> {
    const { ObjectId } = await driver();
    const doc: ItemDoc = { _id: new ObjectId(), name: item.name, quantity: item.quantity, created_at: new Date(now().ms) };
    await this.pool.operation("create item", ({ db }) => db.collection<ItemDoc>(this.collection).insertOne(doc));
    return toItem(doc);
  }

  async get(id: string): Promise<Item> {
    const oid = await objectId(id);
    const doc = await this.pool.operation("get item", ({ db }) => db.collection<ItemDoc>(this.collection).findOne({ _id: oid }));
    if (doc === null) throw new NotFound("no mongodb item has this id");
    return toItem(doc);
  }

  async list(limit: number): Promise<ItemList> {
    const docs = await this.pool.operation("list items", ({ db }) =>
      db
        .collection<ItemDoc>(this.collection)
        .find({})
        .sort({ created_at: -1, _id: -1 })
        .limit(Math.min(limit, MAX_PAGE))
        .toArray(),
    );
    return { items: docs.map(toItem) };
  }

  async delete(id: string): Promise<void> {
    const oid = await objectId(id);
    const result = await this.pool.operation("delete item", ({ db }) => db.collection<ItemDoc>(this.collection).deleteOne({ _id: oid }));
    if (result.deletedCount === 0) throw new NotFound("no mongodb item has this id");
  }
}

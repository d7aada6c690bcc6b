/** The shapes the use cases return: the contract's schemas (openapi/devstack.yaml). */

export type Backend = "postgres" | "mysql" | "mongodb";
export const BACKENDS: readonly Backend[] = ["postgres", "mysql", "mongodb"];

export interface QueryResult {
  database: Backend;
  server_version: string;
  server_time: string;
}

export interface ItemCreate {
  name: string;
  quantity: number;
}

export interface Item {
  id: string;
  name: string;
  quantity: number;
  created_at: string;
}

export interface ItemList {
  items: Item[];
}

export interface ItemRepository {
  readonly backend: Backend;
  query(): Promise<QueryResult>;
  create(item: ItemCreate): Promise<Item>;
  get(id: string): Promise<Item>;
  list(limit: number): Promise<ItemList>;
  delete(id: string): Promise<void>;
}

export const DEFAULT_PAGE = 20;
export const MAX_PAGE = 100;

/** An item id in canonical form (lowercase, hyphenated), accepting the forms Python's
 *  uuid.UUID accepts (braces, a urn:uuid: prefix, no hyphens); undefined when it is not one. */
export function canonicalUuid(id: string): string | undefined {
  const hex = id.replaceAll("urn:", "").replaceAll("uuid:", "").replace(/^\{+|\}+$/g, "").replaceAll("-", "");
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) return undefined;
  const h = hex.toLowerCase();
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

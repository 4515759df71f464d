// Functions the cutover cockpit calls on your Convex deployment, over the HTTP API with the
// deploy key (internal functions are callable with a deploy key). Copy this file into your
// project's convex/ folder and give each migrated table an index on legacyId:
//
//     cases: defineTable({ ... }).index("by_legacy_id", ["legacyId"]),
//
// Every function works one page at a time and returns a cursor, so no call comes near
// Convex's per-transaction limits (16,000 documents written, 32,000 scanned, 4,096 index
// ranges read); the cockpit loops until isDone. The cockpit's sandbox has a stand-in that
// behaves exactly like these functions (cockpit/sandbox/convex/functions.py).

import { v } from "convex/values";
import { internalMutation, internalQuery } from "./_generated/server";

const page = { cursor: v.union(v.string(), v.null()), numItems: v.number() };

// A share of a table by creation time, `from` (inclusive) to `before` (exclusive), either open:
// the cockpit reads a large table as a few shares at once, each paged on its own.
const share = { from: v.optional(v.number()), before: v.optional(v.number()) };

function pageOf(ctx: any, args: { table: string; from?: number; before?: number; cursor: string | null;
                                  numItems: number }) {
  const query = ctx.db.query(args.table as any);
  const ranged = args.from === undefined && args.before === undefined ? query
    : query.withIndex("by_creation_time", (q: any) => {
        const low = args.from === undefined ? q : q.gte("_creationTime", args.from);
        return args.before === undefined ? low : low.lt("_creationTime", args.before);
      });
  return ranged.paginate({ cursor: args.cursor, numItems: args.numItems });
}

// Resolve one page of legacy references: for each document of `table` whose `legacyField`
// holds a v1 uuid and whose `idField` is not set yet, look the uuid up in `target` by its
// legacyId and store the found document's _id in `idField`. Idempotent: a resolved document is
// skipped, so a retried or resumed page writes nothing twice. With `from` and `before`, a page
// of one share of the table: the cockpit resolves a large table as a few shares at once, and
// their mutations read and write disjoint ranges of documents, so they do not conflict.
export const resolveRefs = internalMutation({
  args: { table: v.string(), legacyField: v.string(), idField: v.string(), target: v.string(), ...page, ...share },
  handler: async (ctx, args) => {
    const result = await pageOf(ctx, args);
    let resolved = 0;
    let missing = 0;
    let skipped = 0;
    for (const doc of result.page as any[]) {
      const legacy = doc[args.legacyField];
      if (legacy === undefined || legacy === null || doc[args.idField] !== undefined) {
        skipped += 1;
        continue;
      }
      const found = await ctx.db
        .query(args.target as any)
        .withIndex("by_legacy_id", (q: any) => q.eq("legacyId", legacy))
        .first();
      if (found === null) {
        missing += 1;
        continue;
      }
      await ctx.db.patch(doc._id, { [args.idField]: found._id });
      resolved += 1;
    }
    return {
      processed: result.page.length,
      resolved,
      missing,
      skipped,
      isDone: result.isDone,
      continueCursor: result.continueCursor,
    };
  },
});

// The first and last _creationTime of a table (null when it is empty): where the cockpit cuts
// a table into shares.
export const timeSpan = internalQuery({
  args: { table: v.string() },
  handler: async (ctx, args) => {
    const first = await ctx.db.query(args.table as any).order("asc").first();
    const last = await ctx.db.query(args.table as any).order("desc").first();
    return { first: first?._creationTime ?? null, last: last?._creationTime ?? null };
  },
});

// Count one page of a table's documents (or of a share of them).
export const countPage = internalQuery({
  args: { table: v.string(), ...page, ...share },
  handler: async (ctx, args) => {
    const result = await pageOf(ctx, args);
    return { count: result.page.length, isDone: result.isDone, continueCursor: result.continueCursor };
  },
});

// The documents of `table` whose legacyId is one of `legacyIds` (for sample verification).
export const byLegacyIds = internalQuery({
  args: { table: v.string(), legacyIds: v.array(v.string()) },
  handler: async (ctx, args) => {
    const found = [];
    for (const legacyId of args.legacyIds) {
      const doc = await ctx.db
        .query(args.table as any)
        .withIndex("by_legacy_id", (q: any) => q.eq("legacyId", legacyId))
        .first();
      if (doc !== null) {
        found.push(doc);
      }
    }
    return found;
  },
});

// Check one page of references: a document whose `legacyField` is set must have an `idField`
// that points at an existing document of `target`.
export const checkRefs = internalQuery({
  args: { table: v.string(), legacyField: v.string(), idField: v.string(), target: v.string(), ...page, ...share },
  handler: async (ctx, args) => {
    const result = await pageOf(ctx, args);
    let checked = 0;
    let unresolved = 0;
    let dangling = 0;
    for (const doc of result.page as any[]) {
      const legacy = doc[args.legacyField];
      if (legacy === undefined || legacy === null) {
        continue;
      }
      checked += 1;
      const id = doc[args.idField];
      if (id === undefined) {
        unresolved += 1;
        continue;
      }
      const target = await ctx.db.get(id);
      if (target === null) {
        dangling += 1;
      }
    }
    return { checked, unresolved, dangling, isDone: result.isDone, continueCursor: result.continueCursor };
  },
});

// Aggregate one page: a count per value of `groupBy` (or one group, ""), and the sum of `sum`.
export const aggregatePage = internalQuery({
  args: { table: v.string(), groupBy: v.optional(v.string()), sum: v.optional(v.string()), ...page, ...share },
  handler: async (ctx, args) => {
    const result = await pageOf(ctx, args);
    const groups: Record<string, { count: number; sum: number }> = {};
    for (const doc of result.page as any[]) {
      const key = args.groupBy === undefined ? "" : String(doc[args.groupBy] ?? "null");
      const group = (groups[key] ??= { count: 0, sum: 0 });
      group.count += 1;
      if (args.sum !== undefined && typeof doc[args.sum] === "number") {
        group.sum += doc[args.sum];
      }
    }
    return { groups, isDone: result.isDone, continueCursor: result.continueCursor };
  },
});

// Phase 5 of the id mapping, once v2 is verified and v1 is gone: remove the legacy id fields
// (`fields`) from every document of `tables`, one page of one table per call. The cursor is
// "<table index>:<page cursor>", so one loop walks every table in turn. Idempotent: a document
// without the fields is left alone, so a retried page writes nothing twice.
export const clearLegacyFields = internalMutation({
  args: { tables: v.array(v.string()), fields: v.array(v.string()), ...page },
  handler: async (ctx, args) => {
    const split = args.cursor === null ? -1 : args.cursor.indexOf(":");
    const index = split < 0 ? 0 : Number(args.cursor!.slice(0, split));
    const cursor = split < 0 ? null : args.cursor!.slice(split + 1) || null;
    if (index >= args.tables.length) {
      return { table: null, processed: 0, cleared: 0, isDone: true, continueCursor: `${index}:` };
    }
    const table = args.tables[index];
    const result = await ctx.db.query(table as any).paginate({ cursor, numItems: args.numItems });
    let cleared = 0;
    for (const doc of result.page as any[]) {
      const present = args.fields.filter((field) => doc[field] !== undefined);
      if (present.length === 0) {
        continue;
      }
      await ctx.db.patch(doc._id, Object.fromEntries(present.map((field) => [field, undefined])));
      cleared += 1;
    }
    const last = index === args.tables.length - 1;
    const next = result.isDone ? `${index + 1}:` : `${index}:${result.continueCursor}`;
    return { table, processed: result.page.length, cleared, isDone: result.isDone && last, continueCursor: next };
  },
});

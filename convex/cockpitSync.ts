// Functions `cockpit sync` calls to move v1's changed rows into v2 (an incremental sync),
// over the HTTP API with the deploy key. Copy this file into your project's convex/ folder,
// with convex/cockpit.ts (each synced table needs its by_legacy_id index), and add the table
// the sync keeps its watermarks in to your schema:
//
//     cockpit_sync: defineTable({ table: v.string(), updatedAt: v.union(v.string(), v.null()),
//                                 lastId: v.union(v.string(), v.null()), syncedAt: v.number() }),
//
// A batch of documents and the watermark after it commit in one mutation, so a sync killed at
// any point resumes after the last batch that committed: nothing is lost, and nothing already
// written is written again (a document equal to what v2 holds is left alone). The cockpit's
// sandbox has a stand-in that behaves exactly like these functions
// (cockpit/sandbox/convex/sync_functions.py).

import { ConvexError, v } from "convex/values";
import { internalMutation, internalQuery } from "./_generated/server";

const WATERMARKS = "cockpit_sync";
const reference = v.object({ legacyField: v.string(), idField: v.string(), target: v.string() });
const watermark = v.object({ table: v.string(), updatedAt: v.union(v.string(), v.null()),
                             lastId: v.union(v.string(), v.null()) });

function sameValue(a: any, b: any): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((key) => key in b && sameValue(a[key], b[key]));
}

function sameDocument(existing: any, doc: any): boolean {
  const { _id, _creationTime, ...fields } = existing;
  return sameValue(fields, doc);
}

async function byLegacyId(ctx: any, table: string, legacyId: string) {
  return await ctx.db.query(table as any).withIndex("by_legacy_id", (q: any) => q.eq("legacyId", legacyId)).first();
}

// The watermark of every table synced so far.
export const watermarks = internalQuery({
  args: {},
  handler: async (ctx) => {
    const records = await ctx.db.query(WATERMARKS as any).collect();
    return records.map((r: any) => ({ table: r.table, updatedAt: r.updatedAt, lastId: r.lastId, syncedAt: r.syncedAt }));
  },
});

// Upsert one batch of transformed documents by legacyId, each reference resolved as
// resolveRefs does (the target's document of that legacy id, or the id field left out when
// there is none yet), and, with `watermark`, record how far the table is synced, all in this
// one transaction. With dryRun, the counts come back as a thrown ConvexError's data and nothing
// is written.
export const upsert = internalMutation({
  args: { table: v.string(), documents: v.array(v.any()), references: v.array(reference),
          watermark: v.optional(watermark), dryRun: v.optional(v.boolean()) },
  handler: async (ctx, args) => {
    let inserted = 0;
    let updated = 0;
    let unchanged = 0;
    let unresolved = 0;
    for (const incoming of args.documents as any[]) {
      const doc = { ...incoming };
      for (const ref of args.references) {
        const legacy = doc[ref.legacyField];
        delete doc[ref.idField];
        if (legacy === undefined || legacy === null) continue;
        const target = await byLegacyId(ctx, ref.target, legacy);
        if (target === null) unresolved += 1;
        else doc[ref.idField] = target._id;
      }
      const existing = await byLegacyId(ctx, args.table, doc.legacyId);
      if (existing === null) {
        await ctx.db.insert(args.table as any, doc);
        inserted += 1;
      } else if (sameDocument(existing, doc)) {
        unchanged += 1;
      } else {
        await ctx.db.replace(existing._id, doc);
        updated += 1;
      }
    }
    const result = { inserted, updated, unchanged, unresolved };
    if (args.dryRun) throw new ConvexError({ dryRun: result });
    if (args.watermark !== undefined) {
      const mark = args.watermark;
      const found = await ctx.db.query(WATERMARKS as any).filter((q: any) => q.eq(q.field("table"), mark.table)).first();
      const record = { table: mark.table, updatedAt: mark.updatedAt, lastId: mark.lastId, syncedAt: Date.now() };
      if (found === null) await ctx.db.insert(WATERMARKS as any, record);
      else await ctx.db.replace(found._id, record);
    }
    return result;
  },
});

// One page of a table's legacy ids in their order (the by_legacy_id index's), for finding the
// documents whose row v1 no longer has.
export const legacyIds = internalQuery({
  args: { table: v.string(), cursor: v.union(v.string(), v.null()), numItems: v.number() },
  handler: async (ctx, args) => {
    const result = await ctx.db.query(args.table as any).withIndex("by_legacy_id")
      .paginate({ cursor: args.cursor, numItems: args.numItems });
    return { legacyIds: result.page.map((doc: any) => doc.legacyId ?? null), isDone: result.isDone,
             continueCursor: result.continueCursor };
  },
});

// Delete the documents of these legacy ids (rows deleted from v1). Idempotent: an id already
// gone is counted as missing.
export const deleteByLegacyIds = internalMutation({
  args: { table: v.string(), legacyIds: v.array(v.string()), dryRun: v.optional(v.boolean()) },
  handler: async (ctx, args) => {
    let deleted = 0;
    let missing = 0;
    for (const legacyId of args.legacyIds) {
      const doc = await byLegacyId(ctx, args.table, legacyId);
      if (doc === null) missing += 1;
      else {
        await ctx.db.delete(doc._id);
        deleted += 1;
      }
    }
    if (args.dryRun) throw new ConvexError({ dryRun: { deleted, missing } });
    return { deleted, missing };
  },
});

// The migrations table and its runner, for `cockpit migrate` (versioned migrations applied to
// Convex and PostgreSQL together). Copy this file into your project's convex/ folder and add
// the table to your schema (`cockpit migrate schema` prints it with your migrations' tables):
//
//     cockpit_migrations: defineTable({
//       version: v.string(), name: v.string(), checksum: v.string(),
//       appliedAt: v.number(), appliedBy: v.string(), undo: v.array(v.any()),
//     }),
//
// One migration is one mutation: its operations and its record in cockpit_migrations commit
// together or not at all, and applying it again finds the record and writes nothing, so a
// retried or repeated call is safe. The record keeps what the rollback needs (the ids a
// migration inserted, each updated document's values before, each deleted document whole), so
// a rollback restores what was there, not what the file says was there. A deleted document
// put back gets a new _id; other documents that referred to it by its old one are not changed. Operations scan their
// table, within Convex's per-transaction limits (32,000 documents scanned, 16,000 written); a
// migration of larger tables belongs to @convex-dev/migrations. The cockpit's sandbox has a
// stand-in that behaves exactly like these functions (cockpit/sandbox/convex/migration_functions.py).

import { ConvexError, v } from "convex/values";
import { internalMutation, internalQuery } from "./_generated/server";

const TABLE = "cockpit_migrations";
const page = { cursor: v.union(v.string(), v.null()), numItems: v.number() };

async function recordOf(ctx: any, version: string) {
  return await ctx.db.query(TABLE).filter((q: any) => q.eq(q.field("version"), version)).first();
}

function sameValue(a: any, b: any): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((key) => key in b && sameValue(a[key], b[key]));
}

async function matching(ctx: any, table: string, where: Record<string, any>) {
  const found = await ctx.db.query(table as any).collect();
  return found.filter((doc: any) => Object.entries(where).every(([field, value]) => sameValue(doc[field], value)));
}

function differs(doc: any, expected: Record<string, any>): string | null {
  for (const [field, value] of Object.entries(expected)) {
    if (!sameValue(doc[field], value)) {
      return `${field} is ${JSON.stringify(doc[field] ?? null)}, not ${JSON.stringify(value)}`;
    }
  }
  return null;
}

// The migrations applied, in version order, without their undo data.
export const applied = internalQuery({
  args: {},
  handler: async (ctx) => {
    const records = await ctx.db.query(TABLE as any).collect();
    return records
      .map((r: any) => ({ version: r.version, name: r.name, checksum: r.checksum, appliedAt: r.appliedAt,
                          appliedBy: r.appliedBy }))
      .sort((a: any, b: any) => (a.version < b.version ? -1 : a.version > b.version ? 1 : 0));
  },
});

// Apply one migration's operations and record it, in this one transaction. An update or a
// delete first checks each document it finds against the migration's `original`: a document
// that differs is not what the migration was written for, and nothing is applied. With dryRun,
// everything is done and then thrown away (as @convex-dev/migrations' dryRun): the answer is a
// ConvexError whose data is { dryRun: <the counts> }.
export const apply = internalMutation({
  args: { version: v.string(), name: v.string(), checksum: v.string(), appliedBy: v.string(),
          operations: v.array(v.any()), dryRun: v.optional(v.boolean()) },
  handler: async (ctx, args) => {
    const existing = await recordOf(ctx, args.version);
    if (existing !== null) {
      if (existing.checksum !== args.checksum) {
        throw new Error(`migration ${args.version} is applied with checksum ${existing.checksum}, not ${args.checksum}`);
      }
      return { applied: false, inserted: 0, updated: 0, deleted: 0 };
    }
    const undo: any[] = [];
    let inserted = 0;
    let updated = 0;
    let deleted = 0;
    for (const [index, op] of (args.operations as any[]).entries()) {
      const where = `operation ${index + 1} (${op.type} of ${op.table})`;
      if (op.type === "insert") {
        undo.push({ type: "insert", table: op.table, ids: [await ctx.db.insert(op.table, op.data)] });
        inserted += 1;
      } else if (op.type === "update") {
        const before = [];
        for (const doc of await matching(ctx, op.table, op.where)) {
          const difference = differs(doc, op.original);
          if (difference !== null) throw new Error(`${where}: document ${doc._id}: ${difference} as the migration's original says`);
          const fields: Record<string, any> = {};
          const absent: string[] = [];
          for (const field of Object.keys(op.set)) {
            if (doc[field] === undefined) absent.push(field);
            else fields[field] = doc[field];
          }
          before.push({ id: doc._id, fields, absent });
          await ctx.db.patch(doc._id, op.set);
          updated += 1;
        }
        undo.push({ type: "update", table: op.table, set: op.set, before });
      } else if (op.type === "delete") {
        const documents = [];
        for (const doc of await matching(ctx, op.table, op.where)) {
          const difference = differs(doc, op.original);
          if (difference !== null) throw new Error(`${where}: document ${doc._id}: ${difference} as the migration's original says`);
          const { _id, _creationTime, ...fields } = doc;
          documents.push({ id: _id, fields });
          await ctx.db.delete(_id);
          deleted += 1;
        }
        undo.push({ type: "delete", table: op.table, documents });
      } else {
        throw new Error(`${where}: unknown operation type`);
      }
    }
    const result = { applied: true, inserted, updated, deleted };
    if (args.dryRun) throw new ConvexError({ dryRun: result });
    await ctx.db.insert(TABLE as any, { version: args.version, name: args.name, checksum: args.checksum,
                                        appliedAt: Date.now(), appliedBy: args.appliedBy, undo });
    return result;
  },
});

// A document put back by a rollback has a new _id (Convex gives every insert its own): the
// records of the migrations before it that inserted or updated it learn the new one, so that
// rolling them back finds it too.
async function renameInRecords(ctx: any, renamed: Record<string, string>) {
  if (Object.keys(renamed).length === 0) return;
  for (const record of await ctx.db.query(TABLE as any).collect()) {
    const undo = record.undo.map((step: any) =>
      step.type === "insert" ? { ...step, ids: step.ids.map((id: string) => renamed[id] ?? id) }
      : step.type === "update" ? { ...step, before: step.before.map((b: any) => ({ ...b, id: renamed[b.id] ?? b.id })) }
      : step);
    await ctx.db.patch(record._id, { undo });
  }
}

// Undo one applied migration from its record, last operation first, and delete the record, in
// this one transaction. A document the migration updated whose fields no longer hold what it
// set was changed since: putting the old values back would lose that change, so nothing is
// rolled back. Rolling back a migration that is not applied writes nothing.
export const rollback = internalMutation({
  args: { version: v.string(), dryRun: v.optional(v.boolean()) },
  handler: async (ctx, args) => {
    const record = await recordOf(ctx, args.version);
    if (record === null) return { rolledBack: false, removed: 0, restored: 0, reinserted: 0 };
    let removed = 0;
    let restored = 0;
    let reinserted = 0;
    const renamed: Record<string, string> = {};
    for (const step of [...record.undo].reverse()) {
      if (step.type === "insert") {
        for (const id of step.ids) {
          if ((await ctx.db.get(id)) !== null) {
            await ctx.db.delete(id);
            removed += 1;
          }
        }
      } else if (step.type === "update") {
        for (const before of step.before) {
          const doc = await ctx.db.get(before.id);
          if (doc === null) throw new Error(`migration ${args.version}: document ${before.id} it updated is gone`);
          const difference = differs(doc, step.set);
          if (difference !== null) throw new Error(`migration ${args.version}: document ${before.id} changed since: ${difference}`);
          const absent = Object.fromEntries(before.absent.map((field: string) => [field, undefined]));
          await ctx.db.patch(before.id, { ...before.fields, ...absent });
          restored += 1;
        }
      } else {
        for (const deleted of step.documents) {
          renamed[deleted.id] = await ctx.db.insert(step.table, deleted.fields);
          reinserted += 1;
        }
      }
    }
    const result = { rolledBack: true, removed, restored, reinserted };
    if (args.dryRun) throw new ConvexError({ dryRun: result });
    await ctx.db.delete(record._id);
    await renameInRecords(ctx, renamed);
    return result;
  },
});

// Why `value` is not of the migration schema's `kind` ("string", "number?", "id:users", ...),
// or null when it is.
function typeProblem(ctx: any, value: any, kind: string): string | null {
  const optional = kind.endsWith("?");
  const base = optional ? kind.slice(0, -1) : kind;
  if (value === undefined) return optional ? null : "missing";
  const ok =
    base === "any" ||
    (base === "string" && typeof value === "string") ||
    ((base === "number" || base === "float64") && typeof value === "number") ||
    (base === "int64" && typeof value === "bigint") ||
    (base === "boolean" && typeof value === "boolean") ||
    (base === "bytes" && value instanceof ArrayBuffer) ||
    (base === "null" && value === null) ||
    (base === "array" && Array.isArray(value)) ||
    (base === "object" && typeof value === "object" && value !== null && !Array.isArray(value) &&
      !(value instanceof ArrayBuffer)) ||
    (base.startsWith("id:") && typeof value === "string" && ctx.db.normalizeId(base.slice(3), value) !== null);
  return ok ? null : `not ${base}`;
}

// Check one page of `table` against the fields its migrations declare (field -> kind): a
// declared field missing or of another type, or a field none declares. The first 20
// violations of the page come back with the number of documents that have any.
export const checkSchema = internalQuery({
  args: { table: v.string(), fields: v.record(v.string(), v.string()), ...page },
  handler: async (ctx, args) => {
    const result = await ctx.db.query(args.table as any).paginate({ cursor: args.cursor, numItems: args.numItems });
    const violations: { id: string; field: string; problem: string }[] = [];
    let violating = 0;
    for (const doc of result.page as any[]) {
      const found: { id: string; field: string; problem: string }[] = [];
      for (const [field, kind] of Object.entries(args.fields)) {
        const problem = typeProblem(ctx, doc[field], kind);
        if (problem !== null) found.push({ id: doc._id, field, problem });
      }
      for (const field of Object.keys(doc)) {
        if (!field.startsWith("_") && !(field in args.fields)) found.push({ id: doc._id, field, problem: "not in the schema" });
      }
      violating += found.length > 0 ? 1 : 0;
      violations.push(...found);
    }
    return { checked: result.page.length, violating, violations: violations.slice(0, 20), isDone: result.isDone,
             continueCursor: result.continueCursor };
  },
});

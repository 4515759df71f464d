// Calls a Convex deployment's function with Convex's own HTTP client (the `convex` npm
// package), and prints the outcome as one JSON line. Arguments are JSON, where
// {"$bigint": "5"} stands for the bigint 5n; a bigint in the answer is printed as "5n".
//
//   node call.mjs URL ADMIN_KEY query|mutation|action PATH ARGS_JSON
import { ConvexHttpClient } from "convex/browser";

const [url, key, kind, path, argsJson] = process.argv.slice(2);
const revive = (_key, value) =>
  value && typeof value === "object" && Object.keys(value).length === 1 && "$bigint" in value
    ? BigInt(value.$bigint)
    : value;
const show = (_key, value) => (typeof value === "bigint" ? `${value}n` : value);

const client = new ConvexHttpClient(url, { skipConvexDeploymentUrlCheck: true });
client.setAdminAuth(key);
try {
  const value = await client[kind](path, JSON.parse(argsJson, revive));
  console.log(JSON.stringify({ ok: true, value }, show));
} catch (error) {
  const data = error.data === undefined ? {} : { data: error.data };  // a ConvexError's
  console.log(JSON.stringify({ ok: false, error: error.constructor.name, message: String(error.message), ...data }));
}

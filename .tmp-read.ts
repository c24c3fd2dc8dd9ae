import { connect } from "@nats-io/transport-node";
import { readTable } from "./src/state/table.ts";
const nc = await connect({ servers: "nats://127.0.0.1:14222", noAsyncTraces: true });
for (let i = 0; i < 10; i++) {
  const line = [];
  for (const t of ["revenue_by_store", "revenue_by_item"]) {
    try {
    const rows = await readTable<{ key: string; orders: number }>(nc, t);
    line.push(t, rows.length, rows.reduce((n, r) => n + r.orders, 0));
    } catch (e) { line.push(String(e)); }
  }
  console.log(new Date().toISOString(), ...line);
  await new Promise((r) => setTimeout(r, 1000));
}
await nc.close();

import { connect } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
const nc = await connect({ servers: process.argv[2], noAsyncTraces: true });
const js = jetstream(nc);
const last = (await (await jetstreamManager(nc)).streams.info("bench-state")).state.last_seq;
for (let run = 0; run < 10; run++) {
  const c = await js.consumers.get("bench-state");
  const msgs = await c.consume({ max_messages: 8000, expires: 10000 });
  let batch = 0, seen = 0, lastSeq = 0, overcount = 0;
  const timer = setTimeout(() => { console.log(`run ${run}: STALLED with ${batch} messages held, last seen seq ${lastSeq} of ${last}`); msgs.close(); }, 5000);
  for await (const m of msgs) {
    batch++; lastSeq = m.seq;
    const q = msgs as unknown as { yields: unknown[] };
    if (msgs.getPending() > 0 && q.yields.length === 0) { /* may be over-count */ }
    if (batch >= 2000 || msgs.getPending() === 0) {
      const until = performance.now() + 15; while (performance.now() < until) {} // processing
      await new Promise((r) => setTimeout(r, 1));
      batch = 0;
    }
    if (m.seq === last && batch === 0) { console.log(`run ${run}: ok`); break; }
  }
  clearTimeout(timer);
  await msgs.close();
}
await nc.close();

/**
 * `eddy gen`: publish generated events (seeded, at a rate) to a stream: coffee-shop orders (the
 * generator `eddy dev` runs), or Nexmark's persons, auctions and bids (`--nexmark`, subjects
 * `<stream>.person|auction|bid`).
 */
import { publishOrders } from "../../examples/coffee-shop/orders.ts";
import { publishNexmark } from "../../examples/nexmark/publish.ts";
import type { Platform } from "../platform/platform.ts";
import type { CommandSpec, Parsed } from "./args.ts";
import { progress } from "./progress.ts";
import { natsFlags, withNats } from "./target.ts";

export const genCommand: CommandSpec = {
  name: "gen",
  summary: "Publish generated coffee-shop orders or Nexmark events (deterministic for a seed) to a JetStream stream.",
  positionals: [],
  flags: {
    ...natsFlags,
    nexmark: { type: "boolean", help: "Nexmark events (persons, auctions, bids) instead of orders", default: false },
    stream: { type: "string", help: "stream to publish to (created when missing); default orders, or nexmark" },
    count: { type: "number", help: "how many events", default: 10_000 },
    rate: { type: "number", help: "events per second; 0 = as fast as possible", default: 0 },
    seed: { type: "number", help: "random seed", default: 1 },
    stores: { type: "number", help: "number of stores (orders)", default: 5 },
  },
  examples: ["eddy gen --count 100000 --rate 2000 --seed 7", "eddy gen --nexmark --count 1000000"],
};

export async function gen(platform: Platform, { flags }: Parsed): Promise<number> {
  const count = flags.count as number;
  const nexmark = flags.nexmark === true;
  const stream = (flags.stream as string | undefined) ?? (nexmark ? "nexmark" : "orders");
  const common = {
    stream,
    seed: flags.seed as number,
    count,
    ...(flags.rate ? { ratePerSec: flags.rate as number } : {}),
  };
  return withNats(platform, flags, async (nc) => {
    let signal: string | undefined;
    void platform.shutdownSignal().then((s) => (signal = s));
    const unit = nexmark ? "events" : "orders";
    const bar = progress({ label: "publishing", total: count, unit, terminal: platform.errInteractive, write: platform.err });
    const options = { ...common, onProgress: (n: number) => bar.update(n), stopped: () => signal !== undefined };
    if (nexmark) {
      const { published, byType } = await publishNexmark(nc, options);
      bar.done(signal ? `stopped by ${signal}` : "acknowledged");
      platform.out(
        `published ${published} Nexmark events to ${stream} (${byType.person} persons, ${byType.auction} auctions, ${byType.bid} bids)\n`,
      );
    } else {
      const { published } = await publishOrders(nc, { ...options, stores: flags.stores as number });
      bar.done(signal ? `stopped by ${signal}` : "acknowledged");
      platform.out(`published ${published} orders to ${stream}\n`);
    }
    return 0;
  });
}

/**
 * `eddy gen`: publish coffee-shop orders (seeded, at a rate) to a stream. Also the generator
 * `eddy dev` runs.
 */
import { publishOrders } from "../../examples/coffee-shop/orders.ts";
import type { Platform } from "../platform/platform.ts";
import type { CommandSpec, Parsed } from "./args.ts";
import { progress } from "./progress.ts";
import { natsFlags, withNats } from "./target.ts";

export const genCommand: CommandSpec = {
  name: "gen",
  summary: "Publish generated coffee-shop orders (deterministic for a seed) to a JetStream stream.",
  positionals: [],
  flags: {
    ...natsFlags,
    stream: { type: "string", help: "stream to publish to (created when missing)", default: "orders" },
    count: { type: "number", help: "how many orders", default: 10_000 },
    rate: { type: "number", help: "orders per second; 0 = as fast as possible", default: 0 },
    seed: { type: "number", help: "random seed", default: 1 },
    stores: { type: "number", help: "number of stores", default: 5 },
  },
  examples: ["eddy gen --count 100000 --rate 2000 --seed 7"],
};

export async function gen(platform: Platform, { flags }: Parsed): Promise<number> {
  const count = flags.count as number;
  return withNats(platform, flags, async (nc) => {
    let signal: string | undefined;
    void platform.shutdownSignal().then((s) => (signal = s));
    const bar = progress({
      label: "publishing",
      total: count,
      unit: "orders",
      terminal: platform.errInteractive,
      write: platform.err,
    });
    const { published } = await publishOrders(nc, {
      stream: flags.stream as string,
      seed: flags.seed as number,
      count,
      stores: flags.stores as number,
      ...(flags.rate ? { ratePerSec: flags.rate as number } : {}),
      onProgress: (n) => bar.update(n),
      stopped: () => signal !== undefined,
    });
    bar.done(signal ? `stopped by ${signal}` : "acknowledged");
    platform.out(`published ${published} orders to ${flags.stream}\n`);
    return 0;
  });
}

/** The `eddy` command on Deno: `deno run -A src/platform/deno-main.ts dev`. */
import { main } from "../cli/main.ts";
import { denoPlatform } from "./deno.ts";

denoPlatform.exit(await main(denoPlatform));

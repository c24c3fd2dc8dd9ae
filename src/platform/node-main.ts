/** The `eddy` command on Node (bin/eddy.js loads this through tsx). */
import { main } from "../cli/main.ts";
import { nodePlatform } from "./node.ts";
import { applyV8Defaults } from "./v8-defaults.ts";

applyV8Defaults();
nodePlatform.exit(await main(nodePlatform));

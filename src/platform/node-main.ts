/** The `eddy` command on Node (bin/eddy.js loads this through tsx). */
import { main } from "../cli/main.ts";
import { nodePlatform } from "./node.ts";

nodePlatform.exit(await main(nodePlatform));

#!/usr/bin/env node
// The `eddy` command on Node: TypeScript sources run through tsx's loader.
import { register } from "tsx/esm/api";

register();
await import("../src/platform/node-main.ts");

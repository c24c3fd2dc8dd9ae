/**
 * Vitest's settings: only that `@eddy/eddy` (the package's own name, which the examples import as
 * a user's code would) resolves to the TypeScript source, through tsconfig.json's `paths`, as tsc,
 * tsx and esbuild resolve it here.
 *
 * @example
 * npx vitest run tests/coffee-shop-orders.test.ts
 */
import { defineConfig } from "vitest/config";

export default defineConfig({ resolve: { tsconfigPaths: true } });

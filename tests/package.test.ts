/**
 * Eddy as a user gets it: `npm pack` of this repository (its prepack builds dist/), installed into
 * a new project outside the repository, where
 * - a small pipeline that imports only `@eddy/eddy` (an effect Schema source, keyBy, aggregate,
 *   toTable) and copies of examples/ type-check with the project's own TypeScript against the
 *   package's .d.ts alone, and run under plain Node (no TypeScript loader) against a test server;
 * - the installed `eddy` command reads the table the pipeline wrote;
 * - every type that the package's public signatures name is exported by name, and its
 *   declaration files type-check.
 *
 * npm installs with `--prefer-offline`: the tarball's dependencies, TypeScript and @types/node (the
 * versions this repository has installed) come from npm's cache, which `npm ci` filled.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readTable } from "../src/state/table.ts";
import { useNatsServer } from "./support/nats.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const versionOf = (pkg: string): string =>
  (JSON.parse(readFileSync(join(root, "node_modules", pkg, "package.json"), "utf8")) as { version: string }).version;

interface Run {
  code: number | null;
  output: string;
}

const running = new Set<ChildProcess>();

/** Run a command to its end (killed after `timeoutMs`), with its stdout and stderr together. */
function run(command: string, args: string[], cwd: string, timeoutMs: number): Promise<Run & { stdout: string }> {
  return new Promise((done, fail) => {
    const child = spawn(command, args, {
      cwd,
      env: { ...process.env, NO_UPDATE_NOTIFIER: "1" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    running.add(child);
    let output = "";
    let stdout = "";
    child.stdout.on("data", (chunk: Buffer) => {
      output += chunk.toString();
      stdout += chunk.toString();
    });
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.once("error", fail);
    child.once("exit", (code) => {
      clearTimeout(timer);
      running.delete(child);
      done({ code, output, stdout });
    });
  });
}

async function succeed(command: string, args: string[], cwd: string, timeoutMs: number): Promise<string> {
  const result = await run(command, args, cwd, timeoutMs);
  expect(result.code, `${command} ${args.join(" ")} (in ${cwd}):\n${result.output}`).toBe(0);
  return result.stdout;
}

const SALES = [
  { id: "s-1", store: "store-a", amount: 10 },
  { id: "s-2", store: "store-b", amount: 4 },
  { id: "s-3", store: "store-a", amount: 20 },
  { id: "s-4", store: "store-b", amount: 6 },
  { id: "s-5", store: "store-a", amount: 5 },
  { id: "s-6", store: "store-c", amount: 1 },
];
const EXPECTED = [
  { key: "store-a", sales: 3, amount: 35 },
  { key: "store-b", sales: 2, amount: 10 },
  { key: "store-c", sales: 1, amount: 1 },
];

/** The user's program: publish SALES, run the pipeline until its table holds them all, print the rows. */
const MAIN = `import { Schema } from "effect";
import { connectNats, ensureStream, pipeline, publishAll, readTable, type Table, Worker } from "@eddy/eddy";

const Sale = Schema.Struct({ id: Schema.String, store: Schema.String, amount: Schema.Number });

const p = pipeline("package-test", { partitions: 2 });
const table = p
  .source("sales", { stream: "sales", schema: Sale })
  .keyBy("by-store", "store")
  .aggregate("totals", (a) => ({ sales: a.count(), amount: a.sum("amount") }))
  .toTable("sales_by_store");
type Row = typeof table extends Table<infer R> ? R : never; // { key: string; sales: number; amount: number }
const check: Row = { key: "store-a", sales: 1, amount: 2 };
// The package's types are there, not any: a row's key is the store, a string, and a field that
// is not a number does not sum.
// @ts-expect-error the key is a string
const wrong: Row = { ...check, key: 1 };
// @ts-expect-error "store" is a string
pipeline("unused").source("sales", { stream: "sales", schema: Sale }).keyBy("k", "store").aggregate("bad", (a) => ({ n: a.sum("store") }));

const nc = await connectNats({ url: process.argv[2]!, reconnectForever: false });
await ensureStream(nc, "sales", ["sales.>"]);
const sales = ${JSON.stringify(SALES)};
await publishAll(nc, sales.map((s) => ({ subject: "sales." + s.store, value: s, msgId: s.id })));
const worker = await Worker.start(nc, p, { checkpointMs: 100 });
const deadline = Date.now() + 30_000;
let rows: Row[] = [];
while (rows.reduce((n, row) => n + row.sales, 0) !== sales.length) {
  if (Date.now() > deadline) throw new Error("the table never held every sale: " + JSON.stringify([rows, wrong]));
  await new Promise((resolve) => setTimeout(resolve, 50));
  rows = await readTable<Row>(nc, "sales_by_store").catch(() => []);
}
await worker.stop();
await nc.close();
console.log(JSON.stringify(rows.sort((a, b) => (a.key < b.key ? -1 : 1))));
`;

const TSCONFIG = {
  compilerOptions: {
    target: "ES2022",
    module: "NodeNext",
    moduleResolution: "NodeNext",
    lib: ["ES2023"],
    types: ["node"],
    strict: true,
    skipLibCheck: true,
    verbatimModuleSyntax: true,
    rewriteRelativeImportExtensions: true,
    outDir: "out",
  },
  include: ["main.ts", "examples"],
};

/**
 * Types the public surface reaches only through members users do not call, left unexported on
 * purpose; each with what reaches it. A name that stops being reachable must leave this list.
 */
const INTERNAL: Record<string, string> = {
  Step: "Pipeline.steps / step(id): the compiled graph the worker and the batch oracle read",
  Membership: "Group.membership: its heartbeats and view of the members",
  MembershipOptions: "Membership",
  Leases: "Group.leases: who holds each partition",
  JoinKind: "Step",
  CompiledAggregate: "Step",
  NumericLayout: "CompiledAggregate",
  Plan: "Worker.plan: what the worker runs",
  SourcePlan: "Plan",
  ActorPlan: "Plan",
  EdgeStream: "ActorPlan",
  StreamSinkPlan: "Plan",
  Operator: "Plan",
  OperatorContext: "Operator",
  Rec: "Operator",
  KeyedState: "OperatorContext",
  ChunkSnapshot: "KeyedState",
  removed: "KeyedState",
  MetricsWorker: "ServedWorker, a Pick of Worker",
  ApiMetrics: "QueryApi.metrics",
  ApiMetricsOptions: "ApiMetrics",
  Readiness: "ApiMetrics",
  Shortcut: "QueryApi.shortcut: the Node HTTP listener's fast path",
  ChangeLog: "TableReplica.changes: the change log behind Server-Sent Events",
  LoggedChange: "ChangeLog",
  PageLines: "ChangeLog",
  SchemaDecoder: "Step: a source's decoding",
  PlainObjectCheck: "SchemaDecoder",
  Validate: "SchemaDecoder",
  Result: "SchemaDecoder",
  PlainField: "SchemaDecoder",
  AnyOperator: "Plan",
  TableRows: "Plan",
  Timers: "OperatorContext",
  EmitOptions: "OperatorContext",
  operatorLifecycle: "LifecycleState, derived from the lifecycle machine's type",
  TopLevel: "LifecycleState",
  ActorCore: "operatorLifecycle",
  Batch: "operatorLifecycle",
  LifecycleInput: "operatorLifecycle",
  GcKind: "RuntimeProbes: the platform's probes, which the CLI passes",
  EventLoopDelay: "RuntimeProbes",
};

/**
 * The declarations of the package (under `packageDir`) that the exported signatures of `entry`
 * name, directly or through each other, and that `entry` does not export, by name; and the type
 * errors in the package's own declaration files.
 */
function surfaceOf(entry: string, packageDir: string): { unexported: Map<string, string>; errors: string[] } {
  const program = ts.createProgram([entry], {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    lib: ["lib.es2023.d.ts"],
    types: ["node"],
    strict: true,
    noEmit: true,
  });
  const checker = program.getTypeChecker();
  const ours = (file: ts.SourceFile) => resolve(file.fileName).startsWith(packageDir + "/");
  const unalias = (s: ts.Symbol) => (s.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(s) : s);
  const exported = new Set(checker.getExportsOfModule(checker.getSymbolAtLocation(program.getSourceFile(entry)!)!).map(unalias));
  const topLevel = (d: ts.Declaration) =>
    ts.isSourceFile(d.parent) || (ts.isVariableDeclarationList(d.parent) && ts.isVariableStatement(d.parent.parent));
  const unexported = new Map<string, string>();
  const seen = new Set<ts.Symbol>();
  const queue = [...exported];
  const reach = (symbol: ts.Symbol, from: ts.Node) => {
    if (!(symbol.declarations ?? []).some((d) => ours(d.getSourceFile()) && topLevel(d))) return;
    // `declare const X_base` is what tsc writes for `class X extends <expression>`: nothing to name.
    const synthesized = symbol.flags & ts.SymbolFlags.Variable && symbol.name.endsWith("_base");
    if (!exported.has(symbol) && !synthesized && !unexported.has(symbol.name)) {
      const file = from.getSourceFile();
      const line = file.getLineAndCharacterOfPosition(from.getStart()).line + 1;
      unexported.set(symbol.name, `${relative(packageDir, file.fileName)}:${line}`);
    }
    queue.push(symbol);
  };
  const visit = (node: ts.Node): void => {
    if (ts.canHaveModifiers(node) && ts.getModifiers(node)?.some((m) => m.kind === ts.SyntaxKind.PrivateKeyword)) return;
    let name: ts.Node | undefined;
    if (ts.isTypeReferenceNode(node)) name = node.typeName;
    else if (ts.isExpressionWithTypeArguments(node)) name = node.expression;
    else if (ts.isTypeQueryNode(node)) name = node.exprName;
    else if (ts.isImportTypeNode(node)) name = node.qualifier;
    if (name) {
      const last = ts.isQualifiedName(name) ? name.right : ts.isPropertyAccessExpression(name) ? name.name : name;
      const symbol = checker.getSymbolAtLocation(last);
      if (symbol) reach(unalias(symbol), node);
    }
    ts.forEachChild(node, visit);
  };
  while (queue.length > 0) {
    const symbol = queue.pop()!;
    if (seen.has(symbol)) continue;
    seen.add(symbol);
    for (const d of symbol.declarations ?? []) if (ours(d.getSourceFile())) visit(d);
  }
  const errors = program.getSourceFiles().filter(ours).flatMap((file) =>
    [...program.getSyntacticDiagnostics(file), ...program.getSemanticDiagnostics(file)].map((d) =>
      `${relative(packageDir, file.fileName)}: ${ts.flattenDiagnosticMessageText(d.messageText, "\n")}`
    )
  );
  return { unexported, errors };
}

describe("the npm package", () => {
  const nats = useNatsServer();
  const work = mkdtempSync(join(tmpdir(), "eddy-package-"));
  const app = join(work, "app");
  const installed = join(app, "node_modules", "@eddy", "eddy");

  afterAll(() => {
    for (const child of running) child.kill("SIGKILL");
    rmSync(work, { recursive: true, force: true });
  });

  beforeAll(async () => {
    const packed = await succeed("npm", ["pack", "--silent", "--pack-destination", work], root, 120_000);
    const tarball = join(work, packed.trim().split("\n").pop()!);
    mkdirSync(app);
    writeFileSync(join(app, "package.json"), JSON.stringify({ name: "eddy-user", private: true, type: "module" }));
    await succeed(
      "npm",
      [
        "install",
        "--prefer-offline",
        "--no-audit",
        "--no-fund",
        "--ignore-scripts",
        tarball,
        `typescript@${versionOf("typescript")}`,
        `@types/node@${versionOf("@types/node")}`,
      ],
      app,
      120_000,
    );
  }, 240_000);

  it("ships the compiled library, its declarations and the command, and no TypeScript source", () => {
    const manifest = JSON.parse(readFileSync(join(installed, "package.json"), "utf8")) as Record<string, unknown>;
    expect(manifest.exports).toEqual({
      ".": { types: "./dist/src/mod.d.ts", default: "./dist/src/mod.js" },
      "./package.json": "./package.json",
    });
    expect(readdirSync(installed).sort()).toEqual(["LICENSE", "README.md", "bin", "dist", "package.json"]);
    expect(readdirSync(join(installed, "dist", "src"))).toEqual(expect.arrayContaining(["mod.js", "mod.d.ts"]));
  });

  it("type-checks a pipeline and the examples against the package alone, and runs the pipeline under plain Node", async () => {
    writeFileSync(join(app, "main.ts"), MAIN);
    writeFileSync(join(app, "tsconfig.json"), JSON.stringify(TSCONFIG, null, 2));
    // The examples as a user would copy them: they import Eddy by the package name only.
    for (const dir of ["coffee-shop", "nexmark"]) {
      for (const file of readdirSync(join(root, "examples", dir)).filter((f) => f.endsWith(".ts"))) {
        cpSync(join(root, "examples", dir, file), join(app, "examples", dir, file));
      }
    }
    await succeed(process.execPath, [join(app, "node_modules", "typescript", "bin", "tsc"), "-p", "."], app, 120_000);

    const printed = await succeed(process.execPath, ["out/main.js", nats.url], app, 60_000);
    expect(JSON.parse(printed.trim().split("\n").pop()!)).toEqual(EXPECTED);
    const nc = await nats.connect();
    const rows = (await readTable<{ key: string }>(nc, "sales_by_store")).sort((a, b) => (a.key < b.key ? -1 : 1));
    expect(rows).toEqual(EXPECTED);

    // The installed command (compiled, with tsx only for users' pipeline modules) reads it too.
    const queried = await succeed(
      process.execPath,
      [join(app, "node_modules", ".bin", "eddy"), "query", "sales_by_store", "store-a", "--nats", nats.url],
      app,
      60_000,
    );
    expect(JSON.parse(queried)).toEqual(EXPECTED[0]);
  }, 180_000);

  it("exports by name every type its public signatures name, and its declarations type-check", () => {
    const { unexported, errors } = surfaceOf(join(installed, "dist", "src", "mod.d.ts"), installed);
    expect(errors).toEqual([]);
    const leaks = [...unexported].filter(([name]) => !(name in INTERNAL)).map(([name, at]) => `${name} (named at ${at})`);
    expect(leaks, "types the public surface names but does not export: export them from src/mod.ts").toEqual([]);
    const stale = Object.keys(INTERNAL).filter((name) => !unexported.has(name));
    expect(stale, "no longer reachable from the public surface: remove from INTERNAL").toEqual([]);
  }, 60_000);
});

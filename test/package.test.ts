import { execFileSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fakeClaudePath, repoRoot } from "./harness.js";

// The package as a user installs it: built, packed with `npm pack`, unpacked into another
// project's node_modules (its dependencies linked from ours: no registry needed), then
// imported by name, run, and type-checked against its declarations.
describe("the npm package", () => {
  const root = mkdtempSync(path.join(tmpdir(), "hotplex-pack-"));
  const staged = path.join(root, "staged");
  const consumer = path.join(root, "consumer");
  let files: string[] = [];
  const manifest = JSON.parse(readFileSync(path.join(repoRoot, "package.json"), "utf8")) as { dependencies: Record<string, string> };

  beforeAll(() => {
    // Built and packed from a copy, so the repo's own dist/ is never touched.
    mkdirSync(staged);
    for (const entry of ["package.json", "README.md", "LICENSE", "proto", "src", "gen", "tsconfig.json", "tsconfig.build.json"]) {
      cpSync(path.join(repoRoot, entry), path.join(staged, entry), { recursive: true });
    }
    symlinkSync(path.join(repoRoot, "node_modules"), path.join(staged, "node_modules"));
    execFileSync(process.execPath, [path.join(repoRoot, "node_modules", "typescript", "bin", "tsc"), "-p", "tsconfig.build.json"], { cwd: staged, stdio: "pipe" });
    const packed = JSON.parse(execFileSync("npm", ["pack", "--json", "--pack-destination", root], { cwd: staged, encoding: "utf8" })) as { filename: string; files: { path: string }[] }[];
    files = packed[0]!.files.map((file) => file.path);
    const target = path.join(consumer, "node_modules", "hotplex");
    mkdirSync(target, { recursive: true });
    execFileSync("tar", ["-xzf", path.join(root, packed[0]!.filename), "-C", target, "--strip-components=1"]);
    for (const dependency of [...Object.keys(manifest.dependencies), "@types/node"]) {
      const link = path.join(consumer, "node_modules", dependency);
      mkdirSync(path.dirname(link), { recursive: true });
      symlinkSync(path.join(repoRoot, "node_modules", dependency), link);
    }
    writeFileSync(path.join(consumer, "package.json"), JSON.stringify({ name: "consumer", type: "module", private: true }));
  }, 120_000);
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it("holds the built code, its declarations and the protos; no tests, sources or scratch files", () => {
    expect(files).toContain("dist/src/index.js");
    expect(files).toContain("dist/src/index.d.ts");
    expect(files).toContain("dist/src/client/index.d.ts");
    expect(files).toContain("dist/src/cli/hotplexd.js");
    expect(files).toContain("proto/hotplex/v1/session_service.proto");
    // package.json says Apache-2.0: the license text ships with it.
    expect(files).toContain("LICENSE");
    expect(files.filter((file) => /\.test\.|^src\/|^test\/|scratch|\.ts$/.test(file) && !file.endsWith(".d.ts"))).toEqual([]);
  });

  it("is imported by name, runs a turn without any server, and hides its internals", () => {
    const work = path.join(root, "run");
    writeFileSync(
      path.join(consumer, "main.mjs"),
      `import { createEngine, collectTurn, providerSettings, TurnOutcome } from "hotplex";
import { resumingSubscribe, waitForStatus } from "hotplex/client";
if (typeof resumingSubscribe !== "function" || typeof waitForStatus !== "function") throw new Error("client helpers missing");
const engine = await createEngine({
  workRoot: ${JSON.stringify(path.join(work, "w"))}, stateRoot: ${JSON.stringify(path.join(work, "s"))}, store: "memory",
  providers: providerSettings({ "claude-code": ${JSON.stringify(fakeClaudePath)} }),
  agentEnv: { PATH: process.env.PATH, HOME: ${JSON.stringify(path.join(work, "h"))} }, sandbox: { mode: "off" },
});
const turn = await collectTurn(engine.execute("pkg", "hello from the package"));
await engine.close();
console.log(JSON.stringify({ text: turn.text, completed: turn.ended?.outcome === TurnOutcome.COMPLETED }));
`,
    );
    const out = execFileSync(process.execPath, ["main.mjs"], { cwd: consumer, encoding: "utf8" });
    expect(JSON.parse(out.trim().split("\n").at(-1)!)).toEqual({ text: "echo: hello from the package", completed: true });
    writeFileSync(path.join(consumer, "deep.mjs"), `await import("hotplex/dist/src/engine/engine.js");`);
    expect(() => execFileSync(process.execPath, ["deep.mjs"], { cwd: consumer, stdio: "pipe" })).toThrow(/ERR_PACKAGE_PATH_NOT_EXPORTED/);
  });

  it("type-checks a TypeScript user of its exports", () => {
    writeFileSync(
      path.join(consumer, "typed.ts"),
      `import { createEngine, type EngineOptions, type Event, type HotplexEngine, SessionStatus } from "hotplex";
import { collectTurn, type CollectedTurn } from "hotplex/client";
const options: EngineOptions = { store: "memory", tenant: "acme", limits: { queueLimit: 2 } };
export async function run(): Promise<CollectedTurn> {
  const engine: HotplexEngine = await createEngine(options);
  const events: AsyncIterable<Event> = engine.execute("s", "hi", { config: { model: "m" }, queue: true });
  const ready: boolean = (await engine.snapshot("s")).session.status === SessionStatus.READY;
  void ready;
  return collectTurn(events);
}
// @ts-expect-error an unknown option is refused
export const bad: EngineOptions = { stor: "memory" };
`,
    );
    writeFileSync(
      path.join(consumer, "tsconfig.json"),
      JSON.stringify({ compilerOptions: { module: "NodeNext", moduleResolution: "NodeNext", target: "ES2022", strict: true, noEmit: true, skipLibCheck: false, types: ["node"] }, files: ["typed.ts"] }),
    );
    expect(() => execFileSync(process.execPath, [path.join(repoRoot, "node_modules", "typescript", "bin", "tsc"), "-p", "."], { cwd: consumer, stdio: "pipe" })).not.toThrow();
  });
});

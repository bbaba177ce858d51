import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import {
  ApprovalMode,
  collectTurn,
  createEngine,
  type Event,
  type HotplexEngine,
  HotplexError,
  SessionStatus,
  TurnOutcome,
} from "../../src/index.js";
import { providerSettings } from "../../src/providers/registry.js";
import { fakeClaudePath, isAlive } from "../harness.js";

const scratch: string[] = [];
const engines: HotplexEngine[] = [];
afterEach(async () => {
  for (const engine of engines.splice(0)) await engine.close().catch(() => undefined);
  for (const dir of scratch.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function dirs() {
  const dir = mkdtempSync(path.join(tmpdir(), "hotplex-embed-"));
  scratch.push(dir);
  return { workRoot: path.join(dir, "work"), stateRoot: path.join(dir, "state"), dataDir: path.join(dir, "data"), home: path.join(dir, "home") };
}

async function open(d = dirs(), store: "memory" | "sqlite" = "memory"): Promise<HotplexEngine> {
  const engine = await createEngine({
    workRoot: d.workRoot,
    stateRoot: d.stateRoot,
    store: store === "memory" ? "memory" : { dataDir: d.dataDir },
    providers: providerSettings({ "claude-code": fakeClaudePath }),
    agentEnv: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: d.home },
    sandbox: { mode: "off" },
    limits: { stopGraceMs: 1_000 },
  });
  engines.push(engine);
  return engine;
}

async function all(events: AsyncIterable<Event>): Promise<Event[]> {
  const out: Event[] = [];
  for await (const event of events) out.push(event);
  return out;
}

describe("createEngine: hotplex in the caller's process, no RPC server", () => {
  it("runs turns as async iterables of typed events, with snapshot, subscribe, stats and list agreeing", async () => {
    const engine = await open();
    const events = await all(engine.execute("demo", "hello there"));
    expect(events.map((e) => e.payload.case)).toContain("sessionStarted");
    expect(events.at(-1)?.payload.case).toBe("turnEnded");
    expect(events.map((e) => Number(e.seq))).toEqual(events.map((_, i) => Number(events[0]!.seq) + i));

    const turn = await collectTurn(engine.execute("demo", "[[history]]"));
    expect(turn.text).toContain("hello there");
    expect(turn.ended?.outcome).toBe(TurnOutcome.COMPLETED);

    const { session, lastSeq } = await engine.snapshot("demo");
    expect(session.status).toBe(SessionStatus.READY);
    expect(lastSeq).toBe(turn.events.at(-1)!.seq + 1n); // the StatusChanged (READY) after the turn
    const replay = await engine.subscribe("demo", { afterSeq: 0, follow: false });
    expect(replay.lastSeq).toBe(lastSeq);
    const replayed = await all(replay.events);
    expect(replayed.map((e) => e.seq)).toEqual(replayed.map((_, i) => BigInt(i + 1)));
    expect(replayed.find((e) => e.seq === events[0]!.seq)).toEqual(events[0]);
    expect((await engine.stats("demo")).turns).toBe(2);
    expect((await engine.list()).map((s) => s.sessionId)).toEqual(["demo"]);
    expect((await engine.listProviders()).map((p) => p.name)).toEqual(["claude-code"]);
  });

  it("throws HotplexError with the API's code for bad input, and the engine goes on", () => {
    return open().then(async (engine) => {
      expect(() => engine.execute("../escape", "hi")).toThrow(HotplexError);
      const codeOf = (call: () => unknown) => {
        try {
          call();
        } catch (error) {
          return error instanceof HotplexError ? error.code : `not a HotplexError: ${String(error)}`;
        }
        return "no error";
      };
      const rejectionOf = async (call: () => Promise<unknown>) => {
        try {
          await call();
        } catch (error) {
          return error instanceof HotplexError ? error.code : `not a HotplexError: ${String(error)}`;
        }
        return "no error";
      };
      expect(codeOf(() => engine.execute("ok", "   "))).toBe("invalid_argument");
      expect(codeOf(() => engine.execute("x".repeat(200), "hi"))).toBe("invalid_argument");
      expect(await rejectionOf(() => engine.snapshot("missing"))).toBe("not_found");
      await expect(engine.snapshot("missing")).rejects.toThrow(/does not exist/);
      expect(() => engine.execute("ok", "hi", { config: { workDir: "/etc" } })).toThrow(/outside the work root/);
      // A tenant names directories: never a path.
      expect(() => engine.forTenant("../outside")).toThrow(/tenant "\.\.\/outside" is invalid/);
      expect(() => engine.forTenant("")).toThrow(HotplexError);
      for (const afterSeq of [-1, 1.5, Number.NaN, -1n]) expect(await rejectionOf(() => engine.subscribe("ok", { afterSeq }))).toBe("invalid_argument");
      const turn = await collectTurn(engine.execute("ok", "still here"));
      expect(turn.ended?.outcome).toBe(TurnOutcome.COMPLETED);
    });
  });

  it("offers the interactive calls: approvals answered with respond, interrupt, stop", async () => {
    const engine = await open();
    const seen: Event[] = [];
    const turn = engine.execute("ask", "[[ask:echo approved-run]]", { config: { approvalMode: ApprovalMode.CLIENT } });
    for await (const event of turn) {
      seen.push(event);
      if (event.payload.case === "permissionRequested") await engine.respond("ask", event.payload.value.requestId, { behavior: "allow", updatedInputJson: "", forSession: false });
    }
    expect(seen.map((e) => e.payload.case)).toContain("permissionResolved");
    expect(seen.at(-1)?.payload).toMatchObject({ case: "turnEnded", value: { outcome: TurnOutcome.COMPLETED } });

    const hanging = engine.execute("hang", "[[hang]]");
    const iterator = hanging[Symbol.asyncIterator]();
    await vi.waitFor(async () => expect((await engine.snapshot("hang")).session.status).toBe(SessionStatus.BUSY), { timeout: 5_000, interval: 20 });
    const interrupted = await engine.interrupt("hang");
    expect(interrupted.outcome).toBe(TurnOutcome.INTERRUPTED);
    for (let next = await iterator.next(); !next.done; next = await iterator.next()) if (next.value.payload.case === "turnEnded") break;

    const pid = (await all(engine.execute("stopme", "hi"))).find((e) => e.payload.case === "sessionStarted")!.payload.value as { pid: number };
    const stopped = await engine.stop("stopme");
    expect(stopped.session.status).toBe(SessionStatus.DEAD);
    expect(isAlive(pid.pid)).toBe(false);
  });

  it("refuses a tenant option that is not a tenant name before opening anything", async () => {
    const d = dirs();
    await expect(createEngine({ workRoot: d.workRoot, stateRoot: d.stateRoot, store: "memory", tenant: "a/../../b" })).rejects.toThrow(/tenant "a\/\.\.\/\.\.\/b" is invalid/);
  });

  it("keeps tenants apart through forTenant", async () => {
    const engine = await open();
    const other = engine.forTenant("acme");
    await all(other.execute("shared-id", "acme's"));
    await expect(engine.snapshot("shared-id")).rejects.toThrow(/does not exist/);
    expect((await other.list()).map((s) => s.sessionId)).toEqual(["shared-id"]);
    expect(await engine.list()).toEqual([]);
  });

  it("closes: agents end, and a SQLite engine opened again has the sessions back, resumable", async () => {
    const d = dirs();
    const engine = await open(d, "sqlite");
    const first = await all(engine.execute("durable", "remember OLIVE"));
    const pid = (first.find((e) => e.payload.case === "sessionStarted")!.payload.value as { pid: number }).pid;
    await engine.close();
    engines.splice(engines.indexOf(engine), 1);
    expect(isAlive(pid)).toBe(false);
    const again = await open(d, "sqlite");
    expect((await again.snapshot("durable")).session.status).toBe(SessionStatus.DEAD);
    const turn = await collectTurn(again.execute("durable", "[[history]]"));
    expect(turn.text).toContain("remember OLIVE");
  });
});

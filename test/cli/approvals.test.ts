// Approvals through the CLI: `hotplex approve` / `deny` from a second invocation while
// `exec` waits, the interactive prompt on a (fake) terminal, the automatic flags, and
// Ctrl-C. The daemon runs the in-memory fake provider, whose [[ask:JSON]] asks permission.
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TurnOutcome } from "../../gen/hotplex/v1/event_pb.js";
import { Decider, PermissionDecision } from "../../gen/hotplex/v1/interaction_pb.js";
import { FakeProvider } from "../fixtures/fake-provider.js";
import { startTestDaemon, subscribedEvents, type TestDaemon } from "../harness.js";
import { nextRequest } from "../interactive.js";
import { cli, fakeIo } from "./cli-io.js";

let scratch: string;
let daemon: TestDaemon;
let n = 0;
const sessionId = () => `ask-${++n}`;
const addr = () => ["--addr", daemon.server.url];
const CLIENT = ["--provider", "fake", "--approvals", "client"];

async function resolutions(id: string) {
  return (await subscribedEvents(daemon, id)).flatMap((e) => (e.payload.case === "permissionResolved" ? [e.payload.value] : []));
}
async function outcome(id: string) {
  const ends = (await subscribedEvents(daemon, id)).flatMap((e) => (e.payload.case === "turnEnded" ? [e.payload.value.outcome] : []));
  return ends.at(-1);
}

beforeAll(async () => {
  scratch = mkdtempSync(path.join(tmpdir(), "hotplex-cli-ask-"));
  const dirs = { workRoot: path.join(scratch, "work"), home: path.join(scratch, "home") };
  mkdirSync(dirs.workRoot, { recursive: true });
  mkdirSync(dirs.home, { recursive: true });
  daemon = await startTestDaemon({ providerInstances: [new FakeProvider("fake")], dirs, engine: { approvals: { defaultMode: "agent", timeoutMs: 60_000 } } });
});
afterAll(async () => {
  await daemon?.close();
  rmSync(scratch, { recursive: true, force: true });
});

describe("approvals from the CLI", () => {
  it("without a terminal, exec says how to answer, and `hotplex approve` from a second invocation lets the call run", async () => {
    const id = sessionId();
    const io = fakeIo();
    const exec = cli([...addr(), "exec", ...CLIENT, id, '[[ask:{"command":"touch a"}]]'], {}, io);
    const [, requestId] = await io.waitFor(/hotplex approve \S+ (\S+)/, "err");
    expect(io.out()).toMatch(/\? permission \(request \S+\): shell touch a/);
    const approve = await cli([...addr(), "approve", id, requestId!]);
    expect(approve).toMatchObject({ code: 0, out: `allowed ${requestId}\n` });
    const { code, out } = await exec;
    expect(code).toBe(0);
    expect(out).toContain("✓ allowed by client");
    expect(out).toContain('ran {"command":"touch a"}');
    // A second answer comes too late: the daemon says so, and so does the exit code.
    const late = await cli([...addr(), "deny", id, requestId!]);
    expect(late.code).toBe(1);
    expect(late.err).toMatch(/^error: failed_precondition: /);
  });

  it("`hotplex deny --interrupt` refuses the call and ends the turn", async () => {
    const id = sessionId();
    const io = fakeIo();
    const exec = cli([...addr(), "exec", ...CLIENT, id, '[[ask:{"command":"make clean"}]]'], {}, io);
    const [, requestId] = await io.waitFor(/hotplex deny \S+ (\S+)\)/, "err");
    const denied = await cli([...addr(), "deny", id, requestId!, "--interrupt", "--message", "no way"]);
    expect(denied.err).toBe("");
    expect(denied.code).toBe(0);
    const { code, out } = await exec;
    expect(code).toBe(1);
    expect(out).toMatch(/✗ denied by client \S+: no way \(and interrupted\)/);
    expect(out).toContain("⚠ interrupted");
    expect(await resolutions(id)).toMatchObject([{ decision: PermissionDecision.DENY, interrupt: true, message: "no way" }]);
  });

  it("asks on a terminal: y allows, a allows for the session, n denies", async () => {
    const id = sessionId();
    const { code, out, io } = await cli([...addr(), "exec", "--no-spinner", ...CLIENT, id, '[[ask:{"command":"one"}]] [[ask:{"command":"two"}]] [[ask:{"command":"three"}]]'], {
      tty: true,
      answers: ["maybe", "y", "a", "n"],
    });
    expect(code).toBe(0);
    // An answer that is none of the choices is asked again.
    expect(io.questions).toHaveLength(4);
    expect(io.questions[0]).toMatch(/\[y\]es, \[n\]o, \[a\]lways/);
    expect(out).toContain('ran {"command":"one"}');
    expect(out).toContain("(for the session)");
    expect(out).toContain("denied: ");
    expect((await resolutions(id)).map((r) => [r.decision, r.forSession])).toEqual([
      [PermissionDecision.ALLOW, false],
      [PermissionDecision.ALLOW, true],
      [PermissionDecision.DENY, false],
    ]);
  });

  it("keeps the spinner off while a question is open on the terminal", async () => {
    const id = sessionId();
    let outAtQuestion = "";
    const io = fakeIo({
      tty: true,
      env: { NO_COLOR: "1" },
      answers: async () => {
        outAtQuestion = io.out();
        // Nothing announces that a spinner did not draw: give it three of its 80 ms frames.
        await new Promise((resolve) => setTimeout(resolve, 250));
        return "y";
      },
    });
    const { code } = await cli([...addr(), "exec", ...CLIENT, id, '[[ask:{"command":"spin"}]]'], {}, io);
    expect(code).toBe(0);
    // Spinner frames were drawn before the question (the proof that it runs at all here)...
    expect(outAtQuestion).toMatch(/[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏]/);
    // ...and it was erased as the question came, and not drawn again until the answer.
    expect(outAtQuestion.split("\r\u001b[2K").at(-1)).not.toMatch(/[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏]/);
    const whileAsked = io.out().slice(outAtQuestion.length).split("✓ allowed")[0];
    expect(whileAsked).not.toMatch(/[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏]/);
  });

  it("withdraws the prompt when another client answers first", async () => {
    const id = sessionId();
    let withdrawn = false;
    const io = fakeIo({
      tty: true,
      // Blocks like a person thinking, until the request is decided elsewhere.
      answers: (_q, signal) =>
        new Promise((resolve) => {
          signal?.addEventListener("abort", () => ((withdrawn = true), resolve(undefined)));
        }),
    });
    const exec = cli([...addr(), "exec", "--no-spinner", ...CLIENT, id, '[[ask:{"command":"elsewhere"}]]'], {}, io);
    const request = await nextRequest(daemon.client, id, 0n);
    await io.waitFor(/allow\?/, "err");
    await daemon.client.respondPermission({ sessionId: id, requestId: request.requestId, decision: { case: "allow", value: { forSession: false, updatedInputJson: "" } } });
    const { code, out } = await exec;
    expect(code).toBe(0);
    expect(withdrawn).toBe(true);
    expect(out).toContain('ran {"command":"elsewhere"}');
  });

  it("answers a question on a terminal: an option by number, free text", async () => {
    const id = sessionId();
    const { code, out } = await cli([...addr(), "exec", "--no-spinner", ...CLIENT, id, "[[question]]"], { tty: true, answers: ["2", "extra large"] });
    expect(code).toBe(0);
    expect(out).toContain("answers: color=blue, size=extra large");
    expect(out).toMatch(/1\. red\n {2}2\. blue/);
  });

  it("--approve allows and --deny-all denies without asking, on a terminal or not", async () => {
    const approved = sessionId();
    const yes = await cli([...addr(), "exec", "--approve", ...CLIENT, approved, '[[ask:{"command":"auto"}]]'], { tty: true, answers: [] });
    expect(yes.code).toBe(0);
    expect(yes.io.questions).toEqual([]);
    expect((await resolutions(approved)).map((r) => [r.decision, r.decidedBy])).toEqual([[PermissionDecision.ALLOW, Decider.CLIENT]]);
    const denied = sessionId();
    const no = await cli([...addr(), "exec", "--deny-all", ...CLIENT, denied, '[[ask:{"command":"auto"}]]']);
    expect(no.code).toBe(0);
    expect(no.out).toContain("denied: denied by hotplex exec --deny-all");
  });

  it("Ctrl-C sends Interrupt once and exits 130 when the turn has ended; the agent stays warm", async () => {
    const id = sessionId();
    const io = fakeIo();
    const exec = cli([...addr(), "exec", "--provider", "fake", id, "[[hang]]"], {}, io);
    await io.waitFor(/agent started/);
    io.ctrlC();
    const { code, out } = await exec;
    expect(code).toBe(130);
    expect(out).toContain("interrupting the turn");
    expect(out).toContain("⚠ interrupted");
    expect(await outcome(id)).toBe(TurnOutcome.INTERRUPTED);
    expect((await cli([...addr(), "exec", id, "still there"])).out).toContain("Echo: still there");
  });
});

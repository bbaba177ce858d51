// `hotplex exec` against a real daemon running the fake Claude Code: what a person sees,
// what a script reads (--json), exit codes by outcome, colors and hostile agent output.
import { fromJsonString } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EventSchema, TurnOutcome } from "../../gen/hotplex/v1/event_pb.js";
import { SessionStatus } from "../../gen/hotplex/v1/session_pb.js";
import { followUntil, startTestDaemon, type TestDaemon } from "../harness.js";
import { cli, fakeIo } from "./cli-io.js";

let daemon: TestDaemon;
let n = 0;
const sessionId = () => `exec-${++n}`;
const addr = () => ["--addr", daemon.server.url];
// Durations vary from run to run; nothing else in the rendering does.
const normalized = (text: string) => text.replace(/ in \d+(\.\d)?(ms|s)/g, " in <duration>");

beforeAll(async () => {
  daemon = await startTestDaemon();
});
afterAll(async () => {
  await daemon?.close();
});

describe("hotplex exec", () => {
  it("renders a turn readably: text as it arrives, each tool call and result on one line, a final line with duration, tokens and cost", async () => {
    const { code, out, err } = await cli([...addr(), "exec", sessionId(), '[[tool:Bash:{"command":"echo hi there"}]] [[chunks:4:1]] list the files']);
    expect(err).toBe("");
    expect(code).toBe(0);
    expect(normalized(out)).toMatchInlineSnapshot(`
      "· agent started (cold, claude-code)
      → Bash echo hi there
      ← ok hi there
      echo: list the files
      ✓ completed in <duration> · 24 in / 20 out tokens, 5 cached · $0.0010
      "
    `);
  });

  it("prints one event per line with --json: each line is an Event in protobuf JSON, seqs rising, the last one TurnEnded", async () => {
    const id = sessionId();
    const { code, out } = await cli([...addr(), "exec", "--json", id, "[[chunks:3:1]] hello"]);
    expect(code).toBe(0);
    const events = out.trimEnd().split("\n").map((line) => fromJsonString(EventSchema, line));
    expect(events.length).toBeGreaterThan(4);
    const seqs = events.map((e) => Number(e.seq));
    for (let i = 1; i < seqs.length; i += 1) expect(seqs[i]).toBeGreaterThan(seqs[i - 1]!);
    expect(events.every((e) => e.sessionId === id)).toBe(true);
    const last = events.at(-1)!;
    expect(last.payload.case).toBe("turnEnded");
    expect(last.payload.case === "turnEnded" && last.payload.value.outcome).toBe(TurnOutcome.COMPLETED);
    // Exactly the events the session logged for the turn.
    const logged: bigint[] = [];
    for await (const m of daemon.client.subscribe({ sessionId: id })) logged.push(...m.events.filter((e) => e.turnId === last.turnId).map((e) => e.seq));
    expect(events.map((e) => e.seq)).toEqual(logged);
  });

  it("exits 1 when the turn fails, and shows why", async () => {
    const { code, out } = await cli([...addr(), "exec", sessionId(), "boom [[crash:3]]"]);
    expect(code).toBe(1);
    expect(out).toMatch(/✗ failed in \S+: the agent exited in the middle of the turn/);
    expect(out).toContain("fatal: simulated crash");
  });

  it("strips escape sequences and control characters from what the agent printed, keeping newlines and tabs", async () => {
    const hostile = "\u001b]0;owned\u0007\u001b[2J\u001b[31mred\u001b[0m\rcr\u0008\u009b31m\u202eevil";
    const prompt = `[[tool:Bash:${JSON.stringify({ command: `echo a\tb${hostile}` })}]] ${hostile}`;
    // A terminal, with our own escapes (spinner, colors) off: whatever escape is left came from the agent.
    const { code, out } = await cli([...addr(), "exec", "--no-spinner", sessionId(), prompt], { tty: true, env: { NO_COLOR: "1" } });
    expect(code).toBe(0);
    expect(out).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202e]/);
    expect(out).not.toContain("owned");
    expect(normalized(out)).toMatchInlineSnapshot(`
      "· agent started (cold, claude-code)
      → Bash echo a bredcrevil
      ← ok a bredcrevil
      echo: redcrevil
      ✓ completed in <duration> · 49 in / 45 out tokens, 5 cached · $0.0010
      "
    `);
  });

  it("colors only on a terminal and never with NO_COLOR or --no-color", async () => {
    const ansi = /\u001b\[\d+m/;
    const run = (tty: boolean, env: Record<string, string> = {}, flags: string[] = []) =>
      cli([...addr(), ...flags, "exec", "--no-spinner", sessionId(), "[[tool:Bash:{\"command\":\"echo c\"}]] colors"], { tty, env });
    const terminal = await run(true);
    expect(terminal.code).toBe(0);
    expect(terminal.out).toMatch(ansi);
    for (const plain of [await run(true, { NO_COLOR: "1" }), await run(true, {}, ["--no-color"]), await run(false), await run(true, { TERM: "dumb" })]) {
      expect(plain.code).toBe(0);
      expect(plain.out).not.toMatch(/\u001b/);
      expect(plain.out).toContain("✓ completed");
    }
    // FORCE_COLOR colors a pipe.
    expect((await run(false, { FORCE_COLOR: "1" })).out).toMatch(ansi);
  });

  it("shows a spinner only on a terminal, erased before the turn's output", async () => {
    const terminal = await cli([...addr(), "exec", sessionId(), "[[delay:50]] spin"], { tty: true, env: { NO_COLOR: "1" } });
    expect(terminal.code).toBe(0);
    expect(terminal.out).toMatch(/\r\u001b\[2K[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] (starting|working)/);
    // Every frame is erased: what is left once erasures are applied is the plain rendering.
    const screen = terminal.out.replaceAll(/\r\u001b\[2K[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] [a-z ]+(?=\r\u001b\[2K)/g, "").replaceAll("\r\u001b[2K", "");
    expect(normalized(screen)).toMatch(/^· agent started \(cold, claude-code\)\necho: spin\n✓ completed in <duration> · /);
    const pipe = await cli([...addr(), "exec", sessionId(), "[[delay:50]] spin"]);
    expect(pipe.out).not.toMatch(/[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏]|\r/);
    const off = await cli([...addr(), "exec", "--no-spinner", sessionId(), "spin"], { tty: true });
    expect(off.out).not.toMatch(/[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏]/);
  });

  it("passes the session config options through (provider, model, work dir, tools)", async () => {
    const id = sessionId();
    const { code } = await cli([...addr(), "exec", id, "--provider", "claude-code", "--model", "opus-test", "--work-dir", "cfg-dir", "--allow-tool", "Read", "--allow-tool", "Bash(ls:*)", "--deny-tool", "WebFetch", "--idle-timeout", "60", "hi"]);
    expect(code).toBe(0);
    const { session } = await daemon.client.getSnapshot({ sessionId: id });
    expect(session?.config).toMatchObject({ provider: "claude-code", model: "opus-test", allowedTools: ["Read", "Bash(ls:*)"], disallowedTools: ["WebFetch"], idleTimeoutSeconds: 60 });
    expect(session?.workDir.endsWith("/cfg-dir")).toBe(true);
    // A later turn without options keeps the session's config.
    expect((await cli([...addr(), "exec", id, "again"])).code).toBe(0);
    // One with a different config is refused with the daemon's message.
    const other = await cli([...addr(), "exec", id, "--model", "other-model", "x"]);
    expect(other.code).toBe(1);
    expect(other.err).toMatch(/^error: failed_precondition: .+\nhint: /);
  });

  it("a second Ctrl-C stops waiting at once (exit 130) while the interrupt is still under way", async () => {
    const id = sessionId();
    const io = fakeIo();
    // An agent that ignores the interrupt: the daemon ends it after its stop grace (1 s).
    const exec = cli([...addr(), "exec", "--json", id, "[[hang-hard]]"], {}, io);
    await io.waitFor(/"turnStarted"/);
    io.ctrlC();
    io.ctrlC();
    expect((await exec).code).toBe(130);
    expect(io.err()).toContain("interrupting the turn");
    // The CLI did not wait for the turn: it still runs, until the interrupt ends it.
    expect((await daemon.client.getSnapshot({ sessionId: id })).session?.status).toBe(SessionStatus.BUSY);
    const events = await followUntil(daemon.client, id, (e) => e.payload.case === "turnEnded");
    const end = events.at(-1);
    expect(end?.payload.case === "turnEnded" && end.payload.value.outcome).toBe(TurnOutcome.INTERRUPTED);
  });

  it("reads the prompt from stdin when it is -", async () => {
    const { code, out } = await cli([...addr(), "exec", sessionId(), "-"], { stdin: "from stdin\n" });
    expect(code).toBe(0);
    expect(out).toContain("echo: from stdin");
  });

  it("refuses an empty prompt and conflicting approval flags as usage errors (exit 2)", async () => {
    for (const argv of [["exec", "s", "  "], ["exec", "--approve", "--deny-all", "s", "x"], ["exec", "--approvals", "maybe", "s", "x"], ["exec", "s"], ["exec", "--idle-timeout", "-1", "s", "x"]]) {
      const { code, err } = await cli([...addr(), ...argv]);
      expect(code, argv.join(" ")).toBe(2);
      expect(err).toMatch(/error/);
    }
  });
});

// `hotplex tail --follow` across daemon restarts: the daemon (a real hotplexd process on
// a fixed port and one data dir) is stopped, killed and started again under the CLI,
// which must print every event exactly once, in order.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fromJsonString } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { EventSchema } from "../../gen/hotplex/v1/event_pb.js";
import { SessionService } from "../../gen/hotplex/v1/session_service_pb.js";
import { type DaemonProcess, killDaemonProcesses, startDaemonProcess } from "../daemon-process.js";
import { executeEvents, transportFor } from "../harness.js";
import { cli, cliProcess, fakeIo } from "./cli-io.js";
import { freePort } from "../fixtures/free-port.js";

const scratch: string[] = [];
afterEach(() => {
  killDaemonProcesses();
  for (const dir of scratch.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A daemon that can be restarted on the same port and data. */
async function restartableDaemon() {
  const dir = mkdtempSync(path.join(tmpdir(), "hotplex-cli-tail-"));
  scratch.push(dir);
  const port = await freePort();
  const env = { HOTPLEX_LISTEN: `127.0.0.1:${port}` };
  let current: DaemonProcess = await startDaemonProcess(dir, [], env);
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    client: () => createClient(SessionService, transportFor(url, "connect")),
    async stop(signal: NodeJS.Signals) {
      current.child.kill(signal);
      await current.exit;
    },
    async start() {
      current = await startDaemonProcess(dir, [], env);
    },
  };
}

const seqsOf = (jsonLines: string) =>
  jsonLines
    .trimEnd()
    .split("\n")
    .map((line) => Number(fromJsonString(EventSchema, line).seq));
const turnEnds = (text: string) => text.split('"turnEnded"').length - 1;

describe("hotplex tail --follow", () => {
  it("survives a graceful restart and a SIGKILL of the daemon, printing every seq exactly once", async () => {
    const daemon = await restartableDaemon();
    await executeEvents(daemon.client().execute({ sessionId: "t", prompt: "one" }));
    const io = fakeIo();
    const tail = cli(["--addr", daemon.url, "tail", "t", "--follow", "--json", "--retries", "30"], {}, io);
    await io.waitFor(/"turnEnded"/);

    await daemon.stop("SIGTERM");
    await io.waitFor(/connection lost/, "err");
    await daemon.start();
    await executeEvents(daemon.client().execute({ sessionId: "t", prompt: "two" }));
    await io.waitFor(/reconnected/, "err");
    await io.waitFor(/"turnEnded"[\s\S]*"turnEnded"/);

    await daemon.stop("SIGKILL");
    await daemon.start();
    await executeEvents(daemon.client().execute({ sessionId: "t", prompt: "three [[chunks:20:1]]" }));
    await io.waitFor(/("turnEnded"[\s\S]*){3}/);

    io.ctrlC();
    const { code, out, err } = await tail;
    expect(code).toBe(130);
    expect(turnEnds(out)).toBe(3);
    const seqs = seqsOf(out);
    expect(seqs).toEqual(seqs.map((_, i) => i + 1));
    // Exactly the session's log, nothing missed at either restart.
    const logged: number[] = [];
    for await (const m of daemon.client().subscribe({ sessionId: "t" })) logged.push(...m.events.map((e) => Number(e.seq)));
    expect(seqs).toEqual(logged);
    expect(err).toMatch(/connection lost \(unavailable: .*\); retrying after seq \d+ in \S+ \(1\/30\)/);
  }, 90_000);

  it("runs as its own process: resumes after a restart and exits 130 on SIGINT", async () => {
    const daemon = await restartableDaemon();
    await executeEvents(daemon.client().execute({ sessionId: "p", prompt: "before" }));
    const tail = cliProcess(["tail", "p", "-f", "--after", "2"], { HOTPLEX_ADDR: daemon.url, NO_COLOR: "1" });
    await tail.waitFor(/✓ completed/);
    await daemon.stop("SIGTERM");
    await tail.waitFor(/connection lost/);
    await daemon.start();
    await executeEvents(daemon.client().execute({ sessionId: "p", prompt: "after" }));
    await tail.waitFor(/echo: after[\s\S]*✓ completed/);
    tail.child.kill("SIGINT");
    expect(await tail.exit).toBe(130);
    const out = tail.out();
    // --after 2: the first two events (the agent's cold start, its status) are not printed.
    expect(out).not.toContain("agent started (cold");
    expect(out).toContain("agent started (resumed");
    expect(out.split("▶").length - 1).toBe(2);
    expect(out.match(/echo: before/g)).toHaveLength(1);
    expect(out.match(/echo: after/g)).toHaveLength(1);
    expect(out).toMatch(/· agent ended: \w+ \(/);
    expect(tail.err()).toMatch(/reconnected to http:\/\/127\.0\.0\.1:\d+; resuming after seq \d+/);
  }, 90_000);

  it("without --follow prints the log and exits 0; a seq past the end is out of range", async () => {
    const daemon = await restartableDaemon();
    await executeEvents(daemon.client().execute({ sessionId: "n", prompt: "x" }));
    const all = await cli(["--addr", daemon.url, "tail", "n", "--json"]);
    expect(all.code).toBe(0);
    const seqs = seqsOf(all.out);
    expect(seqs[0]).toBe(1);
    const later = await cli(["--addr", daemon.url, "tail", "n", "--json", "--after", String(seqs.length - 1)]);
    expect(seqsOf(later.out)).toEqual([seqs.length]);
    const beyond = await cli(["--addr", daemon.url, "tail", "n", "--after", "999"]);
    expect(beyond.code).toBe(1);
    expect(beyond.err).toMatch(/^error: out_of_range: /);
  }, 60_000);
});

describe("hotplex exec across a daemon crash", () => {
  it("reads the rest of its turn from the log when the stream breaks, each event once, and reports how the turn ended", async () => {
    const daemon = await restartableDaemon();
    const io = fakeIo();
    // About 4 s of streaming: the kill lands in the middle.
    const exec = cli(["--addr", daemon.url, "exec", "--json", "c", "[[chunks:200:20]] long answer"], {}, io);
    await io.waitFor(/("textDelta"[\s\S]*){5}/);
    await daemon.stop("SIGKILL");
    await io.waitFor(/the stream broke/, "err");
    await daemon.start();
    const { code, out } = await exec;
    // The restarted daemon closes the cut turn explicitly.
    expect(code).toBe(1);
    const events = out.trimEnd().split("\n").map((line) => fromJsonString(EventSchema, line));
    const end = events.at(-1);
    expect(end?.payload.case === "turnEnded" && end.payload.value.errorMessage).toBe("interrupted by daemon restart");
    const seqs = events.map((e) => Number(e.seq));
    expect(new Set(seqs).size).toBe(seqs.length);
    for (let i = 1; i < seqs.length; i += 1) expect(seqs[i]).toBeGreaterThan(seqs[i - 1]!);
    // Everything of the turn in the log, and nothing else.
    const turnId = end!.turnId;
    const logged: number[] = [];
    for await (const m of daemon.client().subscribe({ sessionId: "c" })) logged.push(...m.events.filter((e) => e.turnId === turnId).map((e) => Number(e.seq)));
    expect(seqs).toEqual(logged);
  }, 90_000);
});

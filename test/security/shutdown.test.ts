import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { type Event, TurnOutcome } from "../../gen/hotplex/v1/event_pb.js";
import { SessionStatus } from "../../gen/hotplex/v1/session_pb.js";
import { SessionService } from "../../gen/hotplex/v1/session_service_pb.js";
import { killDaemonProcesses, startDaemonProcess } from "../daemon-process.js";
import { executeEvents, type Protocol, transportFor } from "../harness.js";

const dirs: string[] = [];
afterEach(() => {
  killDaemonProcesses();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe.each(["connect", "grpc"] as Protocol[])("a graceful shutdown (SIGTERM) over %s", (protocol) => {
  it("ends every stream with its last events: Execute with its TurnEnded, a following Subscribe with UNAVAILABLE", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "hotplex-shutdown-"));
    dirs.push(dir);
    const daemon = await startDaemonProcess(dir, [], { HOTPLEX_STOP_GRACE: "1s" });
    const client = createClient(SessionService, transportFor(daemon.url, protocol));
    // An idle keep-alive connection, as a client leaves behind after a call.
    await executeEvents(client.execute({ sessionId: "warm", prompt: "hi" }));

    const executed: Event[] = [];
    const stream = client.execute({ sessionId: "busy", prompt: "[[hang]] working" })[Symbol.asyncIterator]();
    // Until the turn runs (the agent answered): a cold turn's first events are its start.
    while (!executed.some((e) => e.payload.case === "turnStarted")) {
      const next = await stream.next();
      executed.push(...(next.value?.events ?? []));
    }
    const executeDone = (async () => {
      for (let r = await stream.next(); !r.done; r = await stream.next()) executed.push(...r.value.events);
    })();

    const followed: Event[] = [];
    const subscription = client.subscribe({ sessionId: "busy", afterSeq: 0n, follow: true })[Symbol.asyncIterator]();
    await subscription.next(); // the header
    const followDone = (async () => {
      for (let r = await subscription.next(); !r.done; r = await subscription.next()) followed.push(...r.value.events);
    })().then(
      () => undefined,
      (e: unknown) => e,
    );
    // The subscriber has caught up with the running turn.
    while (followed.length < executed.length) await new Promise((resolve) => setTimeout(resolve, 10));

    const signalled = Date.now();
    daemon.child.kill("SIGTERM");
    await executeDone;
    const end = executed.at(-1);
    expect(end?.payload.case).toBe("turnEnded");
    expect(end?.payload.case === "turnEnded" && end.payload.value.outcome).toBe(TurnOutcome.STOPPED);

    const followError = await followDone;
    expect(followError).toBeInstanceOf(ConnectError);
    expect((followError as ConnectError).code).toBe(Code.Unavailable);
    // Every event up to the session's end was delivered before the error.
    expect(followed.map((e) => e.seq)).toEqual(Array.from({ length: followed.length }, (_, i) => BigInt(i + 1)));
    expect(followed.map((e) => e.payload.case)).toContain("turnEnded");
    expect(followed.at(-2)?.payload.case).toBe("sessionEnded");
    expect(followed.at(-1)?.payload).toMatchObject({ case: "statusChanged", value: { status: SessionStatus.DEAD } });

    expect(await daemon.exit).toBe(0);
    // The stop grace (1 s) and a little, not a force-close timer on top.
    expect(Date.now() - signalled).toBeLessThan(2_500);
  });
});

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { toBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { type Event, EventSchema, TurnOutcome } from "../../gen/hotplex/v1/event_pb.js";
import { SessionStatus } from "../../gen/hotplex/v1/session_pb.js";
import { SessionService } from "../../gen/hotplex/v1/session_service_pb.js";
import { collectTurn, resumingSubscribe, waitForStatus } from "../../src/client/index.js";
import { killDaemonProcesses, startDaemonProcess } from "../daemon-process.js";
import { transportFor, waitUntil } from "../harness.js";
import { freePort } from "../fixtures/free-port.js";

const scratch: string[] = [];
afterEach(() => {
  killDaemonProcesses();
  for (const dir of scratch.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe("the client helpers against a daemon killed with SIGKILL and started again", () => {
  it("deliver every stored seq exactly once, in order, with the stored bytes; waitForStatus rides the restart out", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "hotplex-client-helper-"));
    scratch.push(dir);
    const port = await freePort();
    const env = { HOTPLEX_LISTEN: `127.0.0.1:${port}` };
    let daemon = await startDaemonProcess(dir, [], env);
    const client = createClient(SessionService, transportFor(daemon.url, "connect"));
    const first = await collectTurn(client.execute({ sessionId: "s", prompt: "one" }));
    expect(first.ended?.outcome).toBe(TurnOutcome.COMPLETED);

    const stop = new AbortController();
    const retry = { initialDelayMs: 50, maxDelayMs: 200, maxAttempts: 100 };
    const delivered: Event[] = [];
    let reconnects = 0;
    const subscription = resumingSubscribe(client, { sessionId: "s", signal: stop.signal, retry, onHeader: (_h, { reconnect }) => void (reconnect && (reconnects += 1)) });
    const reading = (async () => {
      for await (const event of subscription) delivered.push(event);
    })();

    // A long turn, cut by the kill in its middle.
    void collectTurn(client.execute({ sessionId: "s", prompt: "[[chunks:60:25]] a long answer that streams" })).catch(() => undefined);
    await waitUntil(() => delivered.filter((e) => e.payload.case === "textDelta").length >= 10, 10_000, "the long turn to stream");
    const dead = waitForStatus(client, "s", SessionStatus.DEAD, { retry, timeoutMs: 30_000 });
    daemon.child.kill("SIGKILL");
    await daemon.exit;
    daemon = await startDaemonProcess(dir, [], env);
    // The restart ends the cut turn and the agent: the session is DEAD until its next turn.
    expect(await dead).toBe(SessionStatus.DEAD);
    const after = await collectTurn(client.execute({ sessionId: "s", prompt: "after the restart" }));
    expect(after.ended?.outcome).toBe(TurnOutcome.COMPLETED);
    await waitUntil(() => delivered.some((e) => e.turnId === after.turnId && e.payload.case === "turnEnded"), 10_000, "the helper to deliver the last turn");
    stop.abort();
    await reading;

    const stored: Event[] = [];
    for await (const response of client.subscribe({ sessionId: "s", afterSeq: 0n, follow: false })) stored.push(...response.events);
    expect(reconnects).toBeGreaterThanOrEqual(1);
    expect(stored.map((e) => e.seq)).toEqual(stored.map((_, i) => BigInt(i + 1)));
    const seqs = delivered.map((e) => e.seq);
    expect(seqs).toEqual(seqs.map((_, i) => BigInt(i + 1)));
    expect(seqs.length).toBeLessThanOrEqual(stored.length);
    for (const event of delivered) expect(toBinary(EventSchema, event)).toEqual(toBinary(EventSchema, stored[Number(event.seq) - 1]!));
    const outcomes = delivered.flatMap((e) => (e.payload.case === "turnEnded" ? [e.payload.value.outcome] : []));
    expect(outcomes).toEqual([TurnOutcome.COMPLETED, TurnOutcome.INTERRUPTED, TurnOutcome.COMPLETED]);
  }, 90_000);
});

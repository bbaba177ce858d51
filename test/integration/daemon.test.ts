import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { afterEach, describe, expect, it } from "vitest";
import { SessionService } from "../../gen/hotplex/v1/session_service_pb.js";
import { TurnOutcome } from "../../gen/hotplex/v1/event_pb.js";
import { type DaemonProcess, killDaemonProcesses, startDaemonProcess } from "../daemon-process.js";
import { executeEvents, hostPidOf, isAlive, transportFor, waitUntil } from "../harness.js";

const scratch: string[] = [];

function startDaemon(args: string[], env: Record<string, string> = {}): Promise<DaemonProcess> {
  const dir = mkdtempSync(path.join(tmpdir(), "hotplexd-"));
  scratch.push(dir);
  return startDaemonProcess(dir, args, env);
}

afterEach(() => {
  killDaemonProcesses();
  for (const dir of scratch.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe("hotplexd", () => {
  it("ends every agent process group on SIGTERM, grandchildren included, and exits 0", async () => {
    const daemon = await startDaemon([]);
    const client = createClient(SessionService, transportFor(daemon.url, "connect"));
    const pids: number[] = [];
    const turns: Promise<unknown>[] = [];
    for (const sessionId of ["a", "b"]) {
      const stream = client.execute({ sessionId, prompt: "[[grandchild]] [[hang]]" })[Symbol.asyncIterator]();
      // Read until the agent reported its grandchild; the turn then hangs.
      let reported = false;
      while (!reported) {
        const r = await stream.next();
        if (r.done) break;
        for (const { payload } of r.value.events) {
          if (payload.case === "sessionStarted") pids.push(payload.value.pid);
          const grandchild = payload.case === "textDelta" ? hostPidOf(payload.value.text, "grandchild") : 0;
          if (grandchild) {
            pids.push(grandchild);
            reported = true;
          }
        }
      }
      turns.push((async () => {
        const rest = [];
        for (let r = await stream.next(); !r.done; r = await stream.next()) rest.push(...r.value.events);
        return rest;
      })());
    }
    expect(pids).toHaveLength(4);
    expect(pids.every(isAlive)).toBe(true);

    daemon.child.kill("SIGTERM");
    expect(await daemon.exit).toBe(0);
    await waitUntil(() => !pids.some(isAlive), 5_000, "every agent and grandchild to exit");
    // The turns that were running ended STOPPED before the streams closed.
    const rests = (await Promise.allSettled(turns)).flatMap((r) => (r.status === "fulfilled" ? [r.value as { payload: { case?: string; value?: unknown } }[]] : []));
    for (const rest of rests) {
      const end = rest.find((e) => e.payload.case === "turnEnded");
      if (end) expect((end.payload.value as { outcome: TurnOutcome }).outcome).toBe(TurnOutcome.STOPPED);
    }
  });

  it("serves Connect (HTTP/1.1 and h2c), gRPC and gRPC-Web on the same port", async () => {
    const daemon = await startDaemon([]);
    const viaConnect = createClient(SessionService, transportFor(daemon.url, "connect"));
    const viaConnectH2 = createClient(SessionService, createConnectTransport({ baseUrl: daemon.url, httpVersion: "2" }));
    const viaGrpc = createClient(SessionService, transportFor(daemon.url, "grpc"));
    const viaGrpcWeb = createClient(SessionService, createGrpcWebTransport({ baseUrl: daemon.url, httpVersion: "1.1" }));
    const events = await executeEvents(viaConnect.execute({ sessionId: "both", prompt: "one" }));
    expect(events.at(-1)?.payload.case).toBe("turnEnded");
    const snapshot = await viaGrpc.getSnapshot({ sessionId: "both" });
    // The log's last event is the StatusChanged (READY) right after the turn's end.
    expect(snapshot.lastSeq).toBe((events.at(-1)?.seq ?? 0n) + 1n);
    const streamed = await executeEvents(viaGrpcWeb.execute({ sessionId: "both", prompt: "two" }));
    expect(streamed.at(-1)?.payload.case).toBe("turnEnded");
    const listed = await viaConnectH2.listSessions({});
    expect(listed.sessions.map((s) => s.lastSeq)).toEqual([(streamed.at(-1)?.seq ?? 0n) + 1n]);
    daemon.child.kill("SIGINT");
    expect(await daemon.exit).toBe(0);
  });

  it("refuses to listen off loopback without a token", async () => {
    const started = startDaemon([], { HOTPLEX_LISTEN: "0.0.0.0:0" });
    await expect(started).rejects.toThrow(/not a loopback address: set --token/);
  });
});

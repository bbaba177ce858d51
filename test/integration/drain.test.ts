// SIGTERM on the real daemon process drains: health flips first, new work is refused,
// running turns finish within --drain-grace, the rest are stopped, and the process exits 0.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterEach, describe, expect, it } from "vitest";
import { Health, HealthCheckResponse_ServingStatus as Status } from "../../gen/health/v1/health_pb.js";
import { type Event, TurnOutcome } from "../../gen/hotplex/v1/event_pb.js";
import { SessionService } from "../../gen/hotplex/v1/session_service_pb.js";
import { type DaemonProcess, killDaemonProcesses, startDaemonProcess } from "../daemon-process.js";
import { transportFor } from "../harness.js";

const scratch: string[] = [];

function startDaemon(env: Record<string, string>): Promise<DaemonProcess> {
  const dir = mkdtempSync(path.join(tmpdir(), "hotplexd-drain-"));
  scratch.push(dir);
  return startDaemonProcess(dir, [], env);
}

afterEach(() => {
  killDaemonProcesses();
  for (const dir of scratch.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** Starts a turn and reads its stream until the agent is answering; the rest is read on. */
async function runningTurn(client: ReturnType<typeof createClient<typeof SessionService>>, sessionId: string, prompt: string) {
  const stream = client.execute({ sessionId, prompt })[Symbol.asyncIterator]();
  const events: Event[] = [];
  while (!events.some((e) => e.payload.case === "textDelta")) {
    const next = await stream.next();
    if (next.done) throw new Error("the turn ended before it answered");
    events.push(...next.value.events);
  }
  let ended = false;
  const rest = (async () => {
    for (let r = await stream.next(); !r.done; r = await stream.next()) events.push(...r.value.events);
    ended = true;
    const end = events.at(-1);
    if (end?.payload.case !== "turnEnded") throw new Error(`the turn's stream ended with ${end?.payload.case}`);
    return end.payload.value;
  })();
  return { rest, ended: () => ended };
}

/** A Watch of the daemon as a whole; `next()` is its next status. */
function watchHealth(url: string) {
  const health = createClient(Health, createGrpcTransport({ baseUrl: url }));
  const stream = health.watch({ service: "" })[Symbol.asyncIterator]();
  return {
    next: async () => (await stream.next()).value?.status,
    // How the stream ended, once it did.
    ended: (async () => {
      try {
        for (let r = await stream.next(); !r.done; r = await stream.next());
        return "ok";
      } catch (error) {
        return ConnectError.from(error).code;
      }
    }),
  };
}

describe("SIGTERM", () => {
  it("drains: health flips first, /readyz 503 and /healthz 200 while a turn runs, new turns UNAVAILABLE, the turn finishes, exit 0", async () => {
    const daemon = await startDaemon({ HOTPLEX_DRAIN_GRACE: "20s" });
    const client = createClient(SessionService, transportFor(daemon.url, "grpc"));
    const watch = watchHealth(daemon.url);
    expect(await watch.next()).toBe(Status.SERVING);
    expect((await fetch(new URL("/readyz", daemon.url))).status).toBe(200);

    // About a second and a half of answer left after the first delta.
    const turn = await runningTurn(client, "busy", "[[chunks:4:500]] one two three four five six");
    daemon.child.kill("SIGTERM");

    expect(await watch.next()).toBe(Status.NOT_SERVING);
    const ready = await fetch(new URL("/readyz", daemon.url));
    expect(ready.status).toBe(503);
    expect(await ready.text()).toBe("not ready: draining\n");
    const live = await fetch(new URL("/healthz", daemon.url));
    expect(live.status).toBe(200);
    expect(turn.ended()).toBe(false);

    const refused = await client
      .execute({ sessionId: "late", prompt: "hi" })
      [Symbol.asyncIterator]()
      .next()
      .catch((e: unknown) => ConnectError.from(e));
    expect(refused).toBeInstanceOf(ConnectError);
    expect((refused as ConnectError).code).toBe(Code.Unavailable);
    expect((refused as ConnectError).rawMessage).toMatch(/draining/);

    expect((await turn.rest).outcome).toBe(TurnOutcome.COMPLETED);
    expect(await daemon.exit).toBe(0);
  });

  it("stops the turns still running once --drain-grace is over, and exits 0", async () => {
    const daemon = await startDaemon({ HOTPLEX_DRAIN_GRACE: "500ms" });
    const client = createClient(SessionService, transportFor(daemon.url, "connect"));
    const watch = watchHealth(daemon.url);
    expect(await watch.next()).toBe(Status.SERVING);
    const turn = await runningTurn(client, "stuck", "[[grandchild]] [[hang]]");
    const signalled = Date.now();
    daemon.child.kill("SIGTERM");
    expect(await watch.next()).toBe(Status.NOT_SERVING);
    expect((await turn.rest).outcome).toBe(TurnOutcome.STOPPED);
    // Not before the grace was over.
    expect(Date.now() - signalled).toBeGreaterThanOrEqual(480);
    expect(await daemon.exit).toBe(0);
  });

  it("cuts the grace short on a second signal", async () => {
    const daemon = await startDaemon({ HOTPLEX_DRAIN_GRACE: "10m" });
    const client = createClient(SessionService, transportFor(daemon.url, "connect"));
    const watch = watchHealth(daemon.url);
    expect(await watch.next()).toBe(Status.SERVING);
    const turn = await runningTurn(client, "stuck", "[[grandchild]] [[hang]]");
    daemon.child.kill("SIGTERM");
    // The first signal was handled: the daemon is draining.
    expect(await watch.next()).toBe(Status.NOT_SERVING);
    daemon.child.kill("SIGINT");
    expect((await turn.rest).outcome).toBe(TurnOutcome.STOPPED);
    expect(await daemon.exit).toBe(0);
  });

  it("with --drain-grace 0 shuts down at once, health NOT_SERVING all the same", async () => {
    const daemon = await startDaemon({ HOTPLEX_DRAIN_GRACE: "0" });
    const client = createClient(SessionService, transportFor(daemon.url, "connect"));
    const watch = watchHealth(daemon.url);
    expect(await watch.next()).toBe(Status.SERVING);
    const turn = await runningTurn(client, "stuck", "[[grandchild]] [[hang]]");
    daemon.child.kill("SIGTERM");
    expect(await watch.next()).toBe(Status.NOT_SERVING);
    // The shutdown ends every Watch so that none holds up the close.
    expect(await watch.ended()).toBe(Code.Unavailable);
    expect((await turn.rest).outcome).toBe(TurnOutcome.STOPPED);
    expect(await daemon.exit).toBe(0);
  });
});

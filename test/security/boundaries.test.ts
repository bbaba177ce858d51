import { mkdirSync, renameSync, symlinkSync, writeFileSync } from "node:fs";
import http2 from "node:http2";
import path from "node:path";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TurnOutcome } from "../../gen/hotplex/v1/event_pb.js";
import { SessionStatus } from "../../gen/hotplex/v1/session_pb.js";
import { OutOfRangeDetailSchema, SessionService } from "../../gen/hotplex/v1/session_service_pb.js";
import { collect, executeEvents, startTestDaemon, type TestDaemon, turnEndOf } from "../harness.js";
import { exchange, statusOf } from "./raw-http.js";

async function errorOf(promise: Promise<unknown>): Promise<ConnectError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(error instanceof ConnectError)) throw new Error(`expected a ConnectError, got ${String(error)}`);
  return error;
}

const U64_MAX = 2n ** 64n - 1n;

describe("sequence numbers at their limits", () => {
  let daemon: TestDaemon;
  let lastSeq: bigint;
  beforeAll(async () => {
    daemon = await startTestDaemon();
    await executeEvents(daemon.client.execute({ sessionId: "seq", prompt: "hi" }));
    lastSeq = (await daemon.client.getSnapshot({ sessionId: "seq" })).lastSeq;
  });
  afterAll(async () => {
    await daemon.close();
  });

  const clients = () => ({
    connect: daemon.client,
    json: createClient(SessionService, createConnectTransport({ baseUrl: daemon.server.url, httpVersion: "1.1", useBinaryFormat: false })),
    grpc: daemon.clientFor("grpc"),
  });

  it.each(["connect", "json", "grpc"] as const)("answers every after_seq from 0 to 2^64 - 1 exactly over %s", async (name) => {
    const client = clients()[name];
    expect((await collect(client.subscribe({ sessionId: "seq", afterSeq: 0n }))).flatMap((m) => m.events)).toHaveLength(Number(lastSeq));
    expect((await collect(client.subscribe({ sessionId: "seq", afterSeq: lastSeq }))).flatMap((m) => m.events)).toEqual([]);
    for (const afterSeq of [lastSeq + 1n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 53n + 1n, 2n ** 63n, U64_MAX - 1n, U64_MAX]) {
      const error = await errorOf(collect(client.subscribe({ sessionId: "seq", afterSeq })));
      expect(error.code).toBe(Code.OutOfRange);
      const [detail] = error.findDetails(OutOfRangeDetailSchema);
      // The seq asked for comes back exactly, never rounded to a double.
      expect(detail?.requestedAfterSeq).toBe(afterSeq);
      expect(detail?.lastSeq).toBe(lastSeq);
      expect(error.rawMessage).toContain(afterSeq.toString());
    }
  });

  it.each(["connect", "json", "grpc"] as const)("answers every after_epoch from 1 to 2^64 - 1 exactly over %s: a store of one node writes epoch 0", async (name) => {
    const client = clients()[name];
    // 0 skips the check; with after_seq 0 there is no event to check.
    expect((await collect(client.subscribe({ sessionId: "seq", afterSeq: lastSeq, afterEpoch: 0n }))).flatMap((m) => m.events)).toEqual([]);
    expect((await collect(client.subscribe({ sessionId: "seq", afterSeq: 0n, afterEpoch: U64_MAX }))).flatMap((m) => m.events)).toHaveLength(Number(lastSeq));
    for (const afterEpoch of [1n, 2n ** 53n + 1n, U64_MAX]) {
      const error = await errorOf(collect(client.subscribe({ sessionId: "seq", afterSeq: lastSeq, afterEpoch, follow: true })));
      expect(error.code).toBe(Code.FailedPrecondition);
      // Echoed exactly, never rounded to a double.
      expect(error.rawMessage).toContain(`(epoch ${afterEpoch})`);
      expect(error.rawMessage).toContain(`(seq ${lastSeq} is of epoch 0 now)`);
    }
    // Past the end with an epoch: the event the token names is not there.
    const past = await errorOf(collect(client.subscribe({ sessionId: "seq", afterSeq: U64_MAX, afterEpoch: 7n })));
    expect(past.code).toBe(Code.FailedPrecondition);
    expect(past.rawMessage).toContain(`the log ends at seq ${lastSeq}`);
  });

  it("refuses a JSON after_seq beyond uint64 or below 0 with INVALID_ARGUMENT", async () => {
    for (const afterSeq of ['"18446744073709551616"', '"-1"', "1e400", '"1.5"']) {
      const body = Buffer.from(`{"sessionId":"seq","afterSeq":${afterSeq}}`);
      const envelope = Buffer.concat([Buffer.from([0, 0, 0, 0, 0]), body]);
      envelope.writeUInt32BE(body.length, 1);
      const { response } = await exchange(
        daemon.server.url,
        Buffer.concat([
          Buffer.from(`POST /hotplex.v1.SessionService/Subscribe HTTP/1.1\r\nHost: x\r\nContent-Type: application/connect+json\r\nContent-Length: ${envelope.length}\r\n\r\n`),
          envelope,
        ]),
      );
      expect(response).toContain("invalid_argument");
    }
  });
});

describe("durations a client sends", () => {
  let open: TestDaemon;
  let bounded: TestDaemon;
  beforeAll(async () => {
    // No idle timeout at all: no ceiling on a session's own.
    open = await startTestDaemon({ engine: { limits: { idleTimeoutMs: 0 } } });
    bounded = await startTestDaemon({ engine: { limits: { idleTimeoutMs: 60_000 } } });
  });
  afterAll(async () => {
    await open.close();
    await bounded.close();
  });

  it.each([2_147_484, 4_294_967_295])("keeps an idle timeout of %d s for that long, not 1 ms (Node's timer overflow)", async (seconds) => {
    await executeEvents(open.client.execute({ sessionId: `long-idle-${seconds}`, prompt: "hi", config: { idleTimeoutSeconds: seconds } }));
    // A fixed wait: the overflowed timer fired within a millisecond or two.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const snapshot = await open.client.getSnapshot({ sessionId: `long-idle-${seconds}` });
    expect(snapshot.session?.status).toBe(SessionStatus.READY);
  });

  it("refuses an idle timeout longer than the daemon's with PERMISSION_DENIED naming the setting and the maximum", async () => {
    const error = await errorOf(executeEvents(bounded.client.execute({ sessionId: "too-idle", prompt: "hi", config: { idleTimeoutSeconds: 61 } })));
    expect(error.code).toBe(Code.PermissionDenied);
    expect(error.rawMessage).toContain("config.idle_timeout_seconds");
    expect(error.rawMessage).toContain("60 seconds");
    await executeEvents(bounded.client.execute({ sessionId: "idle-ok", prompt: "hi", config: { idleTimeoutSeconds: 60 } }));
  });

  it("refuses a deadline longer than a day, and runs one within it", async () => {
    const error = await errorOf(bounded.client.getSnapshot({ sessionId: "idle-ok" }, { timeoutMs: 25 * 60 * 60 * 1000 }));
    expect(error.code).toBe(Code.InvalidArgument);
    expect((await bounded.client.getSnapshot({ sessionId: "idle-ok" }, { timeoutMs: 60_000 })).session?.sessionId).toBe("idle-ok");
  });
});

describe("work dirs", () => {
  let daemon: TestDaemon;
  let root: string;
  beforeAll(async () => {
    daemon = await startTestDaemon();
    root = path.join(daemon.workRoot, "default");
    await executeEvents(daemon.client.execute({ sessionId: "owner", prompt: "hi" }));
    await executeEvents(daemon.client.execute({ sessionId: "nested-owner", prompt: "hi", config: { workDir: "x/y" } }));
  });
  afterAll(async () => {
    await daemon.close();
  });

  const refusal = async (workDir: string, sessionId = "intruder") =>
    errorOf(executeEvents(daemon.client.execute({ sessionId, prompt: "hi", config: { workDir } })));

  it.each([
    [".", "work root"],
    ["./", "work root"],
    [".//.", "work root"],
  ])("refuses the work root itself (%j)", async (workDir, why) => {
    const error = await refusal(workDir);
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.rawMessage).toContain("config.work_dir");
    expect(error.rawMessage).toContain(why);
  });

  it("refuses another session's dir, one inside it and one around it", async () => {
    expect((await refusal("owner")).rawMessage).toContain('is the work dir of session "owner"');
    expect((await refusal("owner/sub")).rawMessage).toContain('lies inside the work dir of session "owner"');
    expect((await refusal("x")).rawMessage).toContain('contains the work dir of session "nested-owner"');
    expect((await daemon.client.listSessions({})).sessions.map((s) => s.sessionId)).not.toContain("intruder");
  });

  it("refuses a symlink loop, a NUL byte, an overlong name and a file on the way with INVALID_ARGUMENT naming the field", async () => {
    symlinkSync(path.join(root, "loop-b"), path.join(root, "loop-a"));
    symlinkSync(path.join(root, "loop-a"), path.join(root, "loop-b"));
    writeFileSync(path.join(root, "a-file"), "");
    for (const [workDir, why] of [
      ["loop-a/sub", "loop of symbolic links"],
      ["a\u0000b", "NUL"],
      ["x".repeat(300), "longer than 255 bytes"],
      [`${"d/".repeat(2100)}e`, "longer than 4096 bytes"],
      ["a-file/sub", "file where a directory is needed"],
    ]) {
      const error = await refusal(workDir as string);
      expect(error.code).toBe(Code.InvalidArgument);
      expect(error.rawMessage).toContain("config.work_dir");
      expect(error.rawMessage).toContain(why);
    }
  });

  it("checks the work dir again before every start: a dir swapped for a symlink after a stop is refused", async () => {
    await executeEvents(daemon.client.execute({ sessionId: "swapped", prompt: "hi" }));
    await daemon.client.stopSession({ sessionId: "swapped" });
    const dir = path.join(root, "swapped");
    const outside = path.join(path.dirname(daemon.workRoot), "outside");
    mkdirSync(outside, { recursive: true });
    renameSync(dir, `${dir}.old`);
    symlinkSync(outside, dir);
    const events = await executeEvents(daemon.client.execute({ sessionId: "swapped", prompt: "hi" }));
    const end = turnEndOf(events);
    expect(end.outcome).toBe(TurnOutcome.FAILED);
    expect(end.errorMessage).toContain("refusing to start the agent");
    expect(end.errorMessage).toContain(outside);
    expect(events.map((e) => e.payload.case)).not.toContain("sessionStarted");
  });
});

describe("malformed request messages", () => {
  let daemon: TestDaemon;
  beforeAll(async () => {
    daemon = await startTestDaemon();
    await executeEvents(daemon.client.execute({ sessionId: "intact", prompt: "hi" }));
  });
  afterAll(async () => {
    await daemon.close();
  });

  // Field 1 (session_id) announced as 100 bytes long, then the body ends: no protobuf parser reads it.
  const GARBAGE = Buffer.from([0x0a, 100, 0x61]);
  const enveloped = (bytes: Buffer) => {
    const envelope = Buffer.concat([Buffer.alloc(5), bytes]);
    envelope.writeUInt32BE(bytes.length, 1);
    return envelope;
  };

  it.each(["GetSnapshot", "Subscribe"])("answers INVALID_ARGUMENT over Connect for a %s body that is no message", async (method) => {
    const unary = method === "GetSnapshot";
    const body = unary ? GARBAGE : enveloped(GARBAGE);
    const { response } = await exchange(
      daemon.server.url,
      Buffer.concat([
        Buffer.from(
          `POST /hotplex.v1.SessionService/${method} HTTP/1.1\r\nHost: x\r\nContent-Type: application/${unary ? "proto" : "connect+proto"}\r\nContent-Length: ${body.length}\r\n\r\n`,
        ),
        body,
      ]),
    );
    if (unary) expect(statusOf(response)).toBe(400);
    expect(response).toContain("invalid_argument");
    expect(response).toContain("malformed request body");
  });

  it.each(["GetSnapshot", "Execute"])("answers INVALID_ARGUMENT over gRPC for a %s body that is no message", async (method) => {
    const session = http2.connect(daemon.server.url);
    try {
      const stream = session.request({ ":method": "POST", ":path": `/hotplex.v1.SessionService/${method}`, "content-type": "application/grpc", te: "trailers" });
      const trailers = new Promise<http2.IncomingHttpHeaders>((resolve) => {
        let headers: http2.IncomingHttpHeaders = {};
        stream.on("response", (h) => (headers = h));
        stream.on("trailers", (t) => resolve({ ...headers, ...t }));
        stream.on("end", () => resolve(headers));
      });
      stream.resume();
      stream.end(enveloped(GARBAGE));
      const result = await trailers;
      expect(result["grpc-status"]).toBe(String(Code.InvalidArgument));
    } finally {
      session.close();
    }
  });

  const grpcCall = (session: http2.ClientHttp2Session, method: string, body: Buffer) =>
    new Promise<string | undefined>((resolve) => {
      const stream = session.request({ ":method": "POST", ":path": `/hotplex.v1.SessionService/${method}`, "content-type": "application/grpc", te: "trailers" });
      let status: string | undefined;
      stream.on("response", (h) => (status = (h["grpc-status"] as string | undefined) ?? status));
      stream.on("trailers", (t) => (status = (t["grpc-status"] as string | undefined) ?? status));
      stream.on("close", () => resolve(status));
      stream.on("error", () => undefined);
      stream.resume();
      stream.end(body);
    });

  const grpcJson = (session: http2.ClientHttp2Session, method: string, body: Buffer) =>
    new Promise<string | undefined>((resolve) => {
      const stream = session.request({ ":method": "POST", ":path": `/hotplex.v1.SessionService/${method}`, "content-type": "application/grpc+json", te: "trailers" });
      let status: string | undefined;
      stream.on("response", (h) => (status = (h["grpc-status"] as string | undefined) ?? (h[":status"] === 200 ? status : `http ${h[":status"]}`)));
      stream.on("trailers", (t) => (status = (t["grpc-status"] as string | undefined) ?? status));
      stream.on("close", () => resolve(status));
      stream.on("error", () => undefined);
      stream.resume();
      stream.end(body);
    });

  it.each(["GetSnapshot", "Subscribe"])("answers INVALID_ARGUMENT for a %s envelope flagged compressed without an encoding", async (method) => {
    const session = http2.connect(daemon.server.url);
    try {
      const envelope = enveloped(Buffer.from([0x0a, 1, 0x61]));
      envelope[0] = 1;
      expect(await grpcCall(session, method, envelope)).toBe(String(Code.InvalidArgument));
      envelope[0] = 0x80;
      expect(await grpcCall(session, method, envelope)).not.toBe(String(Code.Internal));
    } finally {
      session.close();
    }
  });

  it("answers INVALID_ARGUMENT for a body that does not inflate, over Connect JSON and gRPC", async () => {
    // A gzip header alone: "unexpected end of file" when inflated.
    const truncated = Buffer.from("1f8b0800000000000003", "hex");
    const { response } = await exchange(
      daemon.server.url,
      Buffer.concat([
        Buffer.from(
          `POST /hotplex.v1.SessionService/ListSessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: ${truncated.length}\r\n\r\n`,
        ),
        truncated,
      ]),
    );
    expect(statusOf(response)).toBe(400);
    expect(response).toContain("invalid_argument");
    const session = http2.connect(daemon.server.url);
    try {
      const envelope = enveloped(truncated);
      envelope[0] = 1;
      const stream = session.request({
        ":method": "POST",
        ":path": "/hotplex.v1.SessionService/Subscribe",
        "content-type": "application/grpc",
        "grpc-encoding": "gzip",
        te: "trailers",
      });
      const status = new Promise<string | undefined>((resolve) => {
        let value: string | undefined;
        stream.on("response", (h) => (value = (h["grpc-status"] as string | undefined) ?? value));
        stream.on("trailers", (t) => (value = (t["grpc-status"] as string | undefined) ?? value));
        stream.on("close", () => resolve(value));
      });
      stream.resume();
      stream.end(envelope);
      expect(await status).toBe(String(Code.InvalidArgument));
    } finally {
      session.close();
    }
  });

  it("answers a JSON message quoting a lone surrogate with a status, not a bare 500", async () => {
    const session = http2.connect(daemon.server.url);
    try {
      const body = Buffer.from('{"sessionId":"a","deleteTranscript":"\\ud800"}');
      const status = await grpcJson(session, "DeleteSession", enveloped(body));
      expect(status).toBe(String(Code.InvalidArgument));
    } finally {
      session.close();
    }
  });

  it("does not let a large refused body stall the other calls on its HTTP/2 connection", async () => {
    const session = http2.connect(daemon.server.url);
    try {
      // An envelope announcing 1 GiB, followed by far more than a connection's window (64 KiB).
      const body = Buffer.concat([Buffer.from([0, 0x40, 0, 0, 0]), Buffer.alloc(512 * 1024, 0x78)]);
      for (let i = 0; i < 4; i += 1) expect(await grpcCall(session, "Subscribe", body)).toBe(String(Code.ResourceExhausted));
      const ok = enveloped(Buffer.from([0x0a, 6, ...Buffer.from("intact")]));
      expect(await grpcCall(session, "GetSnapshot", ok)).toBe("0");
    } finally {
      session.close();
    }
  });

  it("keeps serving, with the earlier session intact", async () => {
    const events = await executeEvents(daemon.client.execute({ sessionId: "intact", prompt: "again" }));
    expect(turnEndOf(events).outcome).toBe(TurnOutcome.COMPLETED);
  });
});

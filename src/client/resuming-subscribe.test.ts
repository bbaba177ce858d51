// The resuming subscription against an in-memory SessionService whose Subscribe
// misbehaves on purpose: it disconnects, restarts, repeats and skips events.
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { type Event, EventSchema } from "../../gen/hotplex/v1/event_pb.js";
import { SessionService, type SubscribeRequest, type SubscribeResponseSchema } from "../../gen/hotplex/v1/session_service_pb.js";
import { resumingSubscribe, type RetryInfo, SequenceError, SubscriptionState } from "./resuming-subscribe.js";

const event = (seq: number): Event => create(EventSchema, { seq: BigInt(seq), sessionId: "s", payload: { case: "textDelta", value: { text: `e${seq}` } } });
type Response = MessageInitShape<typeof SubscribeResponseSchema>;
const header = (incarnation = "inc-1", lastSeq = 0): Response => ({ header: { status: 2, firstSeq: 1n, lastSeq: BigInt(lastSeq), incarnation } });
const batch = (...seqs: number[]): Response => ({ events: seqs.map(event) });

type Script = (request: SubscribeRequest, call: number) => AsyncGenerator<Response>;

/** A client whose n-th Subscribe call (from 0) runs the script; it records every request. */
function scripted(script: Script) {
  const requests: SubscribeRequest[] = [];
  const transport = createRouterTransport(({ service }) =>
    service(SessionService, {
      async *subscribe(request) {
        requests.push(request);
        yield* script(request, requests.length - 1);
      },
    }),
  );
  return { client: createClient(SessionService, transport), requests };
}

const fast = { initialDelayMs: 1, maxDelayMs: 4, random: () => 0.5 };

async function seqsOf(iterable: AsyncIterable<Event>, until?: number): Promise<number[]> {
  const seqs: number[] = [];
  for await (const e of iterable) {
    seqs.push(Number(e.seq));
    if (until !== undefined && Number(e.seq) >= until) break;
  }
  return seqs;
}

describe("resumingSubscribe", () => {
  it("resumes with the (seq, epoch) of the last event it delivered, and ends when the daemon says that event was lost", async () => {
    const epochEvent = (seq: number, epoch: number) => ({ ...event(seq), epoch: BigInt(epoch) });
    const { client, requests } = scripted(async function* (request, call) {
      if (call === 0) {
        yield header();
        yield { events: [epochEvent(1, 3), epochEvent(2, 4)] };
        throw new ConnectError("connection reset", Code.Aborted);
      }
      // The store lost seq 2 of epoch 4 in a failover: the daemon refuses the token.
      throw new ConnectError(`the event at seq ${request.afterSeq} (epoch ${request.afterEpoch}) is not in its log any more`, Code.FailedPrecondition);
    });
    const subscription = resumingSubscribe(client, { sessionId: "s", afterEpoch: 0n, retry: fast });
    const seen: number[] = [];
    const error = await (async () => {
      for await (const e of subscription) seen.push(Number(e.seq));
    })().catch((e: unknown) => e);
    expect(seen).toEqual([1, 2]);
    expect(requests.map((r) => [r.afterSeq, r.afterEpoch])).toEqual([
      [0n, 0n],
      [2n, 4n],
    ]);
    expect((error as ConnectError).code).toBe(Code.FailedPrecondition);
    expect([subscription.lastSeq, subscription.lastEpoch]).toEqual([2n, 4n]);
    expect(subscription.state).toBe(SubscriptionState.Failed);
  });

  it("resumes after a disconnect mid-stream from the last seq it delivered, with the pinned incarnation", async () => {
    const { client, requests } = scripted(async function* (_request, call) {
      yield header();
      if (call === 0) {
        yield batch(1, 2);
        yield batch(3);
        throw new ConnectError("connection reset", Code.Aborted);
      }
      yield batch(4, 5);
    });
    const retries: RetryInfo[] = [];
    const subscription = resumingSubscribe(client, { sessionId: "s", retry: fast, onRetry: (info) => retries.push(info) });
    expect(await seqsOf(subscription, 5)).toEqual([1, 2, 3, 4, 5]);
    expect(requests.map((r) => [r.afterSeq, r.incarnation, r.follow])).toEqual([
      [0n, "", true],
      [3n, "inc-1", true],
    ]);
    expect(retries.map((r) => [r.attempt, r.error.code, r.afterSeq])).toEqual([[1, Code.Aborted, 3n]]);
    expect(subscription.lastSeq).toBe(5n);
    expect(subscription.incarnation).toBe("inc-1");
    expect(subscription.state).toBe(SubscriptionState.Done);
  });

  it("rides out a daemon restart: backs off while the daemon is unreachable, then reads on", async () => {
    const { client, requests } = scripted(async function* (request, call) {
      if (call === 0) {
        yield header();
        yield batch(1, 2);
        throw new ConnectError("the daemon is shutting down", Code.Unavailable);
      }
      // The restart takes three attempts; then the daemon has logged more events.
      if (call < 4) throw new ConnectError("connect ECONNREFUSED", Code.Unavailable);
      yield header("inc-1", 4);
      yield batch(...[3, 4].filter((seq) => BigInt(seq) > request.afterSeq));
    });
    const retries: RetryInfo[] = [];
    const headers: boolean[] = [];
    const subscription = resumingSubscribe(client, {
      sessionId: "s",
      follow: false,
      retry: { initialDelayMs: 2, maxDelayMs: 8, multiplier: 2, random: () => 0.99 },
      onRetry: (info) => retries.push(info),
      onHeader: (_h, { reconnect }) => headers.push(reconnect),
    });
    // Without follow, a stream that ends is the end: no retry after the last batch.
    expect(await seqsOf(subscription)).toEqual([1, 2, 3, 4]);
    expect(requests.map((r) => r.afterSeq)).toEqual([0n, 2n, 2n, 2n, 2n]);
    expect(retries.map((r) => r.attempt)).toEqual([1, 2, 3, 4]);
    // Exponential, capped at maxDelayMs, each delay within [step / 2, step].
    expect(retries.map((r) => r.delayMs)).toEqual([2, 4, 8, 8]);
    expect(headers).toEqual([false, true]);
  });

  it("jitters each delay between half the step and the whole step", async () => {
    const delays = async (random: number) => {
      const { client } = scripted(async function* (_r, call) {
        if (call < 2) throw new ConnectError("down", Code.Unavailable);
        yield header();
      });
      const retries: RetryInfo[] = [];
      await seqsOf(resumingSubscribe(client, { sessionId: "s", follow: false, retry: { initialDelayMs: 10, random: () => random }, onRetry: (i) => retries.push(i) }));
      return retries.map((r) => r.delayMs);
    };
    expect(await delays(0)).toEqual([5, 10]);
    expect(await delays(0.999)).toEqual([10, 20]);
  });

  it("detects a duplicate from the server and delivers nothing twice", async () => {
    const { client } = scripted(async function* (_request, call) {
      yield header();
      if (call === 0) {
        yield batch(1, 2, 3);
        throw new ConnectError("cut", Code.Unavailable);
      }
      // A broken server that ignores after_seq and repeats seq 3.
      yield batch(3, 4);
    });
    const seen: number[] = [];
    const error = await (async () => {
      for await (const e of resumingSubscribe(client, { sessionId: "s", retry: fast })) seen.push(Number(e.seq));
    })().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SequenceError);
    expect(error).toMatchObject({ kind: "duplicate", expected: 4n, received: 3n });
    expect(seen).toEqual([1, 2, 3]);
  });

  it("detects a gap from the server and delivers nothing after it", async () => {
    const { client } = scripted(async function* () {
      yield header();
      yield batch(1, 2, 4, 5);
    });
    const seen: number[] = [];
    const subscription = resumingSubscribe(client, { sessionId: "s", follow: false });
    const error = await (async () => {
      for await (const e of subscription) seen.push(Number(e.seq));
    })().catch((e: unknown) => e);
    expect(error).toMatchObject({ name: "SequenceError", kind: "gap", expected: 3n, received: 4n });
    expect(seen).toEqual([1, 2]);
    expect(subscription.state).toBe(SubscriptionState.Failed);
  });

  it("checks the first event against the starting afterSeq too", async () => {
    const { client } = scripted(async function* () {
      yield header();
      yield batch(1, 2);
    });
    const error = await seqsOf(resumingSubscribe(client, { sessionId: "s", afterSeq: 5n, follow: false })).catch((e: unknown) => e);
    expect(error).toMatchObject({ kind: "duplicate", expected: 6n, received: 1n });
  });

  it("gives up after maxAttempts retries in a row, throwing the last error", async () => {
    const { client, requests } = scripted(async function* () {
      throw new ConnectError("connect ECONNREFUSED", Code.Unavailable);
    });
    const error = await seqsOf(resumingSubscribe(client, { sessionId: "s", retry: { ...fast, maxAttempts: 3 } })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConnectError);
    expect((error as ConnectError).code).toBe(Code.Unavailable);
    expect(requests).toHaveLength(4);
  });

  it("forgives earlier failures once an event arrives", async () => {
    const { client, requests } = scripted(async function* (request, call) {
      // Each stream delivers one event and is cut, and the next attempt fails too: two
      // failures in a row every time, never more than maxAttempts.
      if (call % 2 === 1) throw new ConnectError("flaky", Code.Unavailable);
      yield header();
      yield batch(Number(request.afterSeq) + 1);
      throw new ConnectError("cut", Code.Unavailable);
    });
    const seqs = await seqsOf(resumingSubscribe(client, { sessionId: "s", retry: { ...fast, maxAttempts: 2 } }), 4);
    expect(seqs).toEqual([1, 2, 3, 4]);
    expect(requests).toHaveLength(7);
  });

  it("does not retry what a new connection cannot cure (NOT_FOUND, another incarnation)", async () => {
    for (const code of [Code.NotFound, Code.FailedPrecondition, Code.OutOfRange, Code.Unauthenticated]) {
      const { client, requests } = scripted(async function* () {
        throw new ConnectError("no", code);
      });
      const error = await seqsOf(resumingSubscribe(client, { sessionId: "s", retry: fast })).catch((e: unknown) => e);
      expect((error as ConnectError).code).toBe(code);
      expect(requests).toHaveLength(1);
    }
  });

  it("ends without an error when its signal aborts, during a stream or a backoff", async () => {
    const abort = new AbortController();
    const { client } = scripted(async function* (_r, call) {
      if (call > 0) throw new ConnectError("down", Code.Unavailable);
      yield header();
      yield batch(1);
      throw new ConnectError("cut", Code.Unavailable);
    });
    const started = Date.now();
    const seqs = await seqsOf(
      resumingSubscribe(client, {
        sessionId: "s",
        signal: abort.signal,
        // A long backoff: the abort must cut it short.
        retry: { initialDelayMs: 60_000, maxDelayMs: 60_000 },
        onRetry: () => abort.abort(),
      }),
    );
    expect(seqs).toEqual([1]);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it("treats a following stream that ends cleanly as a disconnect", async () => {
    const { client, requests } = scripted(async function* (_r, call) {
      yield header();
      yield batch(call + 1);
    });
    expect(await seqsOf(resumingSubscribe(client, { sessionId: "s", retry: fast }), 3)).toEqual([1, 2, 3]);
    expect(requests.map((r) => r.afterSeq)).toEqual([0n, 1n, 2n]);
  });

  it("refuses a negative afterSeq and a second iteration", () => {
    const { client } = scripted(async function* () {
      yield header();
    });
    expect(() => resumingSubscribe(client, { sessionId: "s", afterSeq: -1n })).toThrow(/afterSeq/);
    const subscription = resumingSubscribe(client, { sessionId: "s" });
    subscription[Symbol.asyncIterator]();
    expect(() => subscription[Symbol.asyncIterator]()).toThrow(/only once/);
  });
});

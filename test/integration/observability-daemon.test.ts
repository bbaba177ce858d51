// hotplexd as an operator starts it, with its observability options: /metrics on the API's
// port (and a 404 with --metrics off), spans exported by OTLP/HTTP to a local collector
// (flushed at shutdown) with the caller's trace as parent, and bad values refused by name.
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { SessionService } from "../../gen/hotplex/v1/session_service_pb.js";
import { killDaemonProcesses, startDaemonProcess } from "../daemon-process.js";
import { executeEvents, repoRoot, waitUntil } from "../harness.js";
import { Samples } from "./observed-daemon.js";

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
}

// A collector that takes OTLP/HTTP JSON and keeps every span it was sent.
async function startCollector(): Promise<{ url: string; spans: OtlpSpan[]; paths: string[]; close(): Promise<void> }> {
  const spans: OtlpSpan[] = [];
  const paths: string[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      paths.push(`${req.method} ${req.url} ${req.headers["content-type"]}`);
      const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as {
        resourceSpans: { scopeSpans: { spans: OtlpSpan[] }[] }[];
      };
      for (const resource of body.resourceSpans) for (const scope of resource.scopeSpans) spans.push(...scope.spans);
      res.writeHead(200, { "content-type": "application/json" });
      res.end("{}");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, spans, paths, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

describe("hotplexd's metrics and tracing options", () => {
  const dirs: string[] = [];
  const scratch = () => {
    const dir = mkdtempSync(path.join(tmpdir(), "hotplexd-observe-"));
    dirs.push(dir);
    return dir;
  };
  afterEach(() => killDaemonProcesses());
  afterAll(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  it("serves /metrics, writes turn lines (at debug) with the trace id and exports the spans of an Execute and its turn", async () => {
    const collector = await startCollector();
    try {
      const daemon = await startDaemonProcess(scratch(), ["--trace-exporter", "otlp", "--trace-endpoint", collector.url, "--log-level", "debug"]);
      const lines: Record<string, unknown>[] = [];
      createInterface({ input: daemon.child.stdout! }).on("line", (line) => lines.push(JSON.parse(line) as Record<string, unknown>));
      const traceId = randomBytes(16).toString("hex");
      const spanId = randomBytes(8).toString("hex");
      const client = createClient(SessionService, createConnectTransport({ baseUrl: daemon.url, httpVersion: "1.1" }));
      await executeEvents(client.execute({ sessionId: "ops", prompt: "hello" }, { headers: { traceparent: `00-${traceId}-${spanId}-01` } }));

      const response = await fetch(`${daemon.url}/metrics`);
      expect(response.status).toBe(200);
      const samples = new Samples(await response.text());
      expect(samples.get("hotplex_turns_ended_total", { provider: "claude-code", outcome: "completed" })).toBe(1);
      expect(samples.get("hotplex_rpc_requests_total", { method: "Execute", code: "ok" })).toBe(1);
      expect(samples.get("hotplex_sessions", { tenant: "default", status: "ready" })).toBe(1);
      await waitUntil(() => lines.some((line) => line.msg === "turn ended"), 5_000, "the turn line");
      expect(lines.find((line) => line.msg === "turn ended")).toMatchObject({ session: "ops", outcome: "completed", trace_id: traceId });
      expect(lines.find((line) => line.msg === "rpc" && line.rpc === "SessionService.Execute")).toMatchObject({ session: "ops", trace_id: traceId });

      // The batch exporter sends at the latest when the daemon shuts down.
      daemon.child.kill("SIGTERM");
      expect(await daemon.exit).toBe(0);
      const execute = collector.spans.find((span) => span.name === "hotplex.v1.SessionService/Execute" && span.traceId === traceId);
      const turn = collector.spans.find((span) => span.name === "hotplex.turn" && span.traceId === traceId);
      expect(execute?.parentSpanId).toBe(spanId);
      expect(turn?.parentSpanId).toBe(execute?.spanId);
      expect(collector.paths[0]).toMatch(/^POST \/v1\/traces application\/json/);
    } finally {
      await collector.close();
    }
  });

  it("--metrics off: /metrics is a 404", async () => {
    const daemon = await startDaemonProcess(scratch(), ["--metrics", "off"]);
    expect((await fetch(`${daemon.url}/metrics`)).status).toBe(404);
    daemon.child.kill("SIGTERM");
    expect(await daemon.exit).toBe(0);
  });

  it("refuses bad values, naming the option", () => {
    const run = (...args: string[]) =>
      spawnSync(process.execPath, ["--import", "tsx", path.join(repoRoot, "src/cli/hotplexd.ts"), ...args], {
        cwd: repoRoot,
        env: { PATH: process.env.PATH ?? "", HOME: scratch(), HOTPLEX_WORK_ROOT: path.join(scratch(), "w"), HOTPLEX_STATE_DIR: path.join(scratch(), "s") },
        encoding: "utf8",
      });
    for (const [args, message] of [
      [["--metrics", "maybe"], /--metrics "maybe" must be one of on, off/],
      [["--metrics-access", "everyone"], /--metrics-access "everyone" must be one of admin, anyone/],
      [["--trace-exporter", "jaeger"], /--trace-exporter "jaeger" must be one of none, otlp/],
      [["--trace-exporter", "otlp", "--trace-endpoint", "ftp://collector"], /--trace-endpoint: "ftp:\/\/collector" is not an http or https URL/],
    ] as const) {
      const result = run(...args);
      expect(result.status, result.stderr).toBe(2);
      expect(result.stderr).toMatch(message);
    }
  });
});

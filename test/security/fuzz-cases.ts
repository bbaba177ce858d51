// The case generator of the fuzz suite (fuzz.test.ts): every request it sends, built from
// one seed, so that a run can be replayed exactly. Cases start from valid messages of the
// API's schemas (with hostile field values), then get their bytes, framing, compression,
// headers, credentials and paths mutated; raw-socket cases break HTTP itself.
import { createHash } from "node:crypto";
import zlib from "node:zlib";
import { create, type DescMessage, type DescMethod, type DescService, type Message, ScalarType, toBinary, toJson } from "@bufbuild/protobuf";
import {
  AdminService,
  DeleteTenantSessionRequestSchema,
  DrainRequestSchema,
  GetServerInfoRequestSchema,
  GetSessionLogsRequestSchema,
  ListAllSessionsRequestSchema,
  ListAuditEventsRequestSchema,
  SetRuleBypassRequestSchema,
  StopTenantSessionRequestSchema,
} from "../../gen/hotplex/v1/admin_service_pb.js";
import { type SessionConfig, SessionConfigSchema } from "../../gen/hotplex/v1/session_pb.js";
import {
  DeleteSessionRequestSchema,
  ExecuteRequestSchema,
  GetSessionStatsRequestSchema,
  GetSnapshotRequestSchema,
  CancelTurnRequestSchema,
  ChangeSettingsRequestSchema,
  ForkSessionRequestSchema,
  InterruptRequestSchema,
  ListModelsRequestSchema,
  ListProvidersRequestSchema,
  ResetSessionRequestSchema,
  RespondPermissionRequestSchema,
  SetTitleRequestSchema,
  SteerRequestSchema,
  ListSessionsRequestSchema,
  SessionService,
  StopSessionRequestSchema,
  SubscribeRequestSchema,
} from "../../gen/hotplex/v1/session_service_pb.js";

// ---------------------------------------------------------------- randomness

/** mulberry32: a tiny, fast PRNG with 32 bits of state; the same seed gives the same run. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class Rng {
  readonly #next: () => number;
  constructor(seed: number) {
    this.#next = mulberry32(seed);
  }
  float(): number {
    return this.#next();
  }
  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.#next() * n);
  }
  /** An integer in [lo, hi]. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }
  chance(p: number): boolean {
    return this.#next() < p;
  }
  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error("pick from an empty list");
    return items[this.int(items.length)] as T;
  }
  /** One of the entries, each as likely as its weight. */
  weighted<T>(entries: readonly (readonly [number, T])[]): T {
    const total = entries.reduce((sum, [weight]) => sum + weight, 0);
    let r = this.#next() * total;
    for (const [weight, value] of entries) {
      r -= weight;
      if (r < 0) return value;
    }
    return (entries[entries.length - 1] as readonly [number, T])[1];
  }
  bytes(n: number): Buffer {
    const out = Buffer.alloc(n);
    for (let i = 0; i < n; i += 1) out[i] = this.int(256);
    return out;
  }
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i -= 1) {
      const j = this.int(i + 1);
      [items[i], items[j]] = [items[j] as T, items[i] as T];
    }
    return items;
  }
}

// ---------------------------------------------------------------- cases

export type ProtocolName = "connect-json" | "connect-proto" | "connect-stream" | "connect-h2" | "grpc" | "grpc-web" | "raw";

/** How the response to a case is framed, and so how its outcome is read. */
export type ResponseFraming = "connect-unary" | "connect-stream" | "grpc" | "grpc-web";

/**
 * The credential a case sends: `valid` the right one as `Bearer <token>`, `variant` the
 * right token in another spelling the daemon must accept (scheme in any case, a tab),
 * `missing` none, `wrong` one the daemon must refuse.
 */
export type AuthKind = "valid" | "variant" | "missing" | "wrong";

export interface HttpCase {
  kind: "h1" | "h2";
  id: number;
  protocol: ProtocolName;
  framing: ResponseFraming;
  /** "SessionService/Execute": the method the path names (whatever the path's mutation). */
  method: string;
  httpMethod: "POST" | "GET";
  path: string;
  headers: Record<string, string>;
  body: Buffer;
  auth: AuthKind;
  /** Canonical path, content type and headers: the outcome of a bad credential is predictable. */
  sane: boolean;
  /** What was done to the request, in order. */
  what: string[];
}

export interface RawCase {
  kind: "raw";
  id: number;
  protocol: "raw";
  method: string;
  bytes: Buffer;
  /** Statuses the daemon must answer with, when the request is one it must serve. */
  expectStatus?: number[];
  what: string[];
}

export type FuzzCase = HttpCase | RawCase;

export interface CaseContext {
  token: string;
  /** The session no mutating call may name (its log is compared before and after). */
  protectedSession: string;
}

/** Cases per protocol for a run of `total` cases (≥ 3000 by default). */
export function caseCounts(total: number): Record<ProtocolName, number> {
  const share: Record<ProtocolName, number> = {
    "connect-json": 0.21,
    "connect-proto": 0.18,
    "connect-stream": 0.16,
    "connect-h2": 0.05,
    grpc: 0.19,
    "grpc-web": 0.14,
    raw: 0.07,
  };
  const counts = {} as Record<ProtocolName, number>;
  for (const [name, part] of Object.entries(share) as [ProtocolName, number][]) counts[name] = Math.round(total * part);
  return counts;
}

/** Every case of a run, in the (shuffled) order they are sent; ids are stable per seed. */
export function generateCases(seed: number, total: number, context: CaseContext): FuzzCase[] {
  const generator = new Generator(new Rng(seed), context);
  const cases: FuzzCase[] = [];
  for (const [protocol, count] of Object.entries(caseCounts(total)) as [ProtocolName, number][]) {
    for (let i = 0; i < count; i += 1) cases.push(generator.next(protocol, cases.length));
  }
  return generator.rng.shuffle(cases);
}

/** A short hash of every case's bytes: equal for equal seeds, so a replay can be checked. */
export function fingerprint(cases: readonly FuzzCase[]): string {
  const hash = createHash("sha256");
  for (const c of [...cases].sort((a, b) => a.id - b.id)) {
    hash.update(`${c.id}|${c.what.join(",")}|`);
    if (c.kind === "raw") hash.update(c.bytes);
    else {
      hash.update(`${c.httpMethod} ${c.path} ${JSON.stringify(c.headers)}`);
      hash.update(c.body);
    }
  }
  return hash.digest("hex").slice(0, 16);
}

/** A one-line reproduction of a case: method, headers and the first bytes of its body. */
export function describeCase(c: FuzzCase, maxBytes = 96): string {
  if (c.kind === "raw") return `#${c.id} raw [${c.what.join("; ")}] ${c.bytes.length} bytes: ${printable(c.bytes, maxBytes)}`;
  const headers = Object.entries(c.headers)
    .map(([k, v]) => `${k}: ${k === "authorization" ? v.replace(/[^ \t]+$/, (t) => (t.length > 12 ? `${t.slice(0, 12)}…` : t)) : v.slice(0, 80)}`)
    .join(" | ");
  return `#${c.id} ${c.protocol} over ${c.kind} ${c.httpMethod} ${c.path.slice(0, 120)} [${c.what.join("; ")}] {${headers}} body ${c.body.length} bytes: ${printable(c.body, maxBytes)}`;
}

function printable(bytes: Buffer, max: number): string {
  const head = bytes.subarray(0, max);
  const text = head.toString("latin1");
  const readable = /^[\x20-\x7e\r\n\t]*$/.test(text);
  const shown = readable ? JSON.stringify(text) : `hex ${head.toString("hex")}`;
  return bytes.length > max ? `${shown}…` : shown;
}

// ---------------------------------------------------------------- values

const POOL = ["fz-0", "fz-1", "fz-2", "fz-3"];
const MiB = 1024 * 1024;
const U64_MAX = 2n ** 64n - 1n;
const U64 = [0n, 1n, 2n, 3n, 4n, 7n, 1000n, 2n ** 31n, 2n ** 32n, 2n ** 53n + 1n, 2n ** 63n - 1n, 2n ** 63n, U64_MAX - 1n, U64_MAX];
const U32 = [0, 1, 59, 60, 3600, 86400, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1];
const BAD_IDS = [
  "",
  ".",
  "..",
  "a/b",
  "../etc",
  "../../../../etc/passwd",
  "a b",
  "a\u0000b",
  "\u0000",
  "a\nb",
  "a\r\nX-Injected: 1",
  "x".repeat(129),
  "x".repeat(5000),
  "sé",
  "😀",
  "\ud800",
  "\u202egnp.exe",
  "--help",
  "-",
  "%2e%2e",
  "a\\b",
  "a;rm -rf /",
  "$(id)",
  "${HOME}",
  "a*",
  "🙂".repeat(100),
  "\t",
  " fz-0",
  "fz-0 ",
  "ｆｚ-0",
];
const ODD_VALID_IDS = ["-", "_", ":", "a.b:c-d", "..a", "a..", ".hidden", "-rf", "x".repeat(128)];
const WEIRD_STRINGS = [
  "",
  " ",
  "\u0000",
  "a\u0000b",
  "é",
  "😀",
  "\ud800",
  "\udfff\ud800",
  "\u202e",
  "\r\n",
  "%00",
  "../..",
  "x".repeat(5000),
  "<script>alert(1)</script>",
  "' OR 1=1 --",
  "--flag=value",
  "default",
  "*",
];
const WORK_DIRS = [
  "..",
  "../..",
  "../outside",
  "a/../../b",
  "/",
  "/etc",
  "/proc/self/root",
  "/proc/self/cwd",
  "//",
  ".",
  "./",
  "~",
  "~/x",
  "a\u0000b",
  "\u0000",
  "x".repeat(5000),
  `${"d/".repeat(2100)}x`,
  "escape",
  "escape/etc",
  "loop",
  "loop/x",
  "dangling",
  "dangling/x",
  "afile",
  "afile/x",
  "up",
  "up/x",
  "sub/dir",
  "fz-1",
  "fz-0/inner",
  "é/😀",
  "-rf",
  "--work-dir=/",
];
const MODELS = ["", "sonnet", "claude-opus-4-8[1m]", "-rf", "--settings={}", "a".repeat(300), "a\u0000b", "../../bin/sh", "m o d e l", "é", "us.anthropic.claude:0"];
const PERMISSION_MODES = ["", "default", "plan", "acceptEdits", "dontAsk", "auto", "bypassPermissions", "--dangerously-skip-permissions", "x", "DEFAULT", "\u0000"];
const TOOL_LISTS: string[][] = [
  [],
  ["Bash(ls:*)"],
  ["Edit", "Read"],
  ["-x"],
  ["--settings={}"],
  ["a\nb"],
  ["x".repeat(600)],
  Array.from({ length: 300 }, () => "Edit"),
  ["\u0000"],
  [""],
  ["Bash(rm -rf /:*)"],
];
const PROMPTS = ["hello", "héllo 😀 \u202e", "nul \u0000 inside", "   ", "", "\n\t", "\u0001\u001f\u007f", "{\"type\":\"user\"}", "line1\nline2", "x".repeat(10_000)];

// Valid JSON values of the wrong type or out of range, as JSON text.
const JSON_VALUES = [
  "18446744073709551616",
  "18446744073709551615",
  "-1",
  "-18446744073709551615",
  "-9223372036854775809",
  "9007199254740993",
  "4294967296",
  "-2147483649",
  "1e400",
  "-1e400",
  "1.5",
  "-0",
  "0.0",
  "1e2",
  "1E-7",
  '"18446744073709551616"',
  '"-1"',
  '"1e3"',
  '"0x10"',
  '"1.0"',
  '" 1"',
  '""',
  "true",
  "false",
  "null",
  "[]",
  "{}",
  "[1,2,3]",
  '{"a":1}',
  '"NaN"',
  '"Infinity"',
  '"\\u0000"',
  '"a\\u0000b"',
  '"\\ud800"',
  '"\\udfff\\ud800"',
  '"é😀"',
  '"\\u202e"',
  '"../../etc"',
  '"fz-0"',
];

// ---------------------------------------------------------------- the generator

interface Target {
  service: DescService;
  method: DescMethod;
  /** Only reads: may name the protected session. */
  readOnly: boolean;
}

const SESSION_METHODS = SessionService.methods;
const ADMIN_METHODS = AdminService.methods;
const READ_ONLY = new Set(["Subscribe", "GetSnapshot", "GetSessionStats", "ListSessions", "ListAllSessions", "GetServerInfo", "ListAuditEvents", "ListModels"]);

function target(service: DescService, name: string): Target {
  const method = service.methods.find((m) => m.name === name);
  if (!method) throw new Error(`no method ${name}`);
  return { service, method, readOnly: READ_ONLY.has(name) };
}

function pathOf(t: Target): string {
  return `/${t.service.typeName}/${t.method.name}`;
}

class Generator {
  readonly rng: Rng;
  readonly #context: CaseContext;
  // Sessions that fuzzed Execute calls may create beyond the pool (each starts an agent).
  #newSessions = 6;
  // Megabyte-sized values, kept few: each costs a real agent turn or a large parse.
  #bigValues = 14;
  readonly #bombs: Record<string, Buffer>;

  constructor(rng: Rng, context: CaseContext) {
    this.rng = rng;
    this.#context = context;
    const zeros = (n: number) => Buffer.alloc(n);
    this.#bombs = {
      "gzip 3 MiB of zeros": zlib.gzipSync(zeros(3 * MiB), { level: 9 }),
      "gzip 6 MiB of zeros": zlib.gzipSync(zeros(6 * MiB), { level: 9 }),
      "gzip 8 MiB of 0x0a": zlib.gzipSync(Buffer.alloc(8 * MiB, 0x0a), { level: 9 }),
      "brotli 6 MiB of zeros": zlib.brotliCompressSync(zeros(6 * MiB)),
      "gzip JSON with a 3 MiB string": zlib.gzipSync(Buffer.from(`{"sessionId":"${"a".repeat(3 * MiB)}"}`), { level: 9 }),
      "gzip JSON of 3 MiB of spaces": zlib.gzipSync(Buffer.from(`{${" ".repeat(3 * MiB)}}`), { level: 9 }),
    };
  }

  next(protocol: ProtocolName, id: number): FuzzCase {
    switch (protocol) {
      case "connect-json":
        return this.#connectUnary(id, "json", "h1", protocol);
      case "connect-proto":
        return this.#connectUnary(id, "proto", "h1", protocol);
      case "connect-stream":
        return this.#connectStream(id, "h1", protocol);
      case "connect-h2": {
        const which = this.rng.int(3);
        if (which === 0) return this.#connectUnary(id, "json", "h2", protocol);
        if (which === 1) return this.#connectUnary(id, "proto", "h2", protocol);
        return this.#connectStream(id, "h2", protocol);
      }
      case "grpc":
        return this.#grpc(id);
      case "grpc-web":
        return this.#grpcWeb(id);
      case "raw":
        return this.#raw(id);
    }
  }

  // ------------------------------------------------------------ targets and messages

  #unaryTarget(): Target {
    const rng = this.rng;
    if (rng.chance(0.12)) return target(AdminService, rng.pick(ADMIN_METHODS.filter((m) => m.methodKind === "unary")).name);
    const unary = SESSION_METHODS.filter((m) => m.methodKind === "unary");
    // The session methods that read are the most interesting (they reach the engine).
    return target(SessionService, rng.weighted([
      [3, "GetSnapshot"],
      [2, "GetSessionStats"],
      [2, "ListSessions"],
      [2, "StopSession"],
      [1, "DeleteSession"],
      [1, rng.pick(unary).name],
    ]));
  }

  #streamTarget(): Target {
    // GetSessionLogs never follows here (see #message), so it ends like a page.
    if (this.rng.chance(0.1)) return target(AdminService, "GetSessionLogs");
    return target(SessionService, this.rng.chance(0.5) ? "Execute" : "Subscribe");
  }

  #anyTarget(): Target {
    return this.rng.chance(0.4) ? this.#streamTarget() : this.#unaryTarget();
  }

  #big(): boolean {
    if (this.#bigValues <= 0 || !this.rng.chance(0.01)) return false;
    this.#bigValues -= 1;
    return true;
  }

  #sessionId(readOnly: boolean, what: string[], creates: boolean): string {
    const rng = this.rng;
    const kind = rng.weighted([
      [45, "pool"],
      [30, "bad"],
      [8, "missing"],
      [readOnly ? 14 : 0, "protected"],
      [4, "odd-valid"],
    ] as const);
    if (kind === "pool") return rng.pick(POOL);
    if (kind === "protected") {
      what.push("the protected session");
      return this.#context.protectedSession;
    }
    if (kind === "bad") {
      const id = rng.pick(BAD_IDS);
      what.push(`session id ${JSON.stringify(id.slice(0, 24))}${id.length > 24 ? `… (${id.length} chars)` : ""}`);
      return id;
    }
    // Valid ids that name no session: Execute creates one (and starts an agent), so few.
    if (creates) {
      if (this.#newSessions <= 0) return rng.pick(POOL);
      this.#newSessions -= 1;
    }
    if (kind === "odd-valid") {
      const id = rng.pick(ODD_VALID_IDS);
      what.push(`odd valid session id ${JSON.stringify(id.slice(0, 24))}`);
      return id;
    }
    return `fz-missing-${rng.int(1_000_000)}`;
  }

  #weird(): string {
    return this.rng.pick(WEIRD_STRINGS);
  }

  #config(what: string[]): SessionConfig | undefined {
    const rng = this.rng;
    if (!rng.chance(0.15)) return undefined;
    const config = create(SessionConfigSchema);
    const fields: string[] = [];
    if (rng.chance(0.5)) {
      config.workDir = rng.pick(WORK_DIRS);
      fields.push(`work_dir ${JSON.stringify(config.workDir.slice(0, 24))}`);
    }
    if (rng.chance(0.3)) {
      config.model = rng.pick(MODELS);
      fields.push("model");
    }
    if (rng.chance(0.3)) {
      config.permissionMode = rng.pick(PERMISSION_MODES);
      fields.push(`permission_mode ${JSON.stringify(config.permissionMode)}`);
    }
    if (rng.chance(0.25)) {
      config.allowedTools = rng.pick(TOOL_LISTS);
      fields.push("allowed_tools");
    }
    if (rng.chance(0.2)) {
      config.disallowedTools = rng.pick(TOOL_LISTS);
      fields.push("disallowed_tools");
    }
    if (rng.chance(0.2)) {
      config.systemPrompt = this.#big() ? "s".repeat(MiB + 1) : rng.pick(["be brief", "a\u0000b", "--settings={}", "é😀", ""]);
      fields.push(`system_prompt (${config.systemPrompt.length} chars)`);
    }
    if (rng.chance(0.15)) {
      config.appendSystemPrompt = rng.pick(["more", "\u0000", "x".repeat(5000)]);
      fields.push("append_system_prompt");
    }
    if (rng.chance(0.4)) {
      config.idleTimeoutSeconds = rng.pick(U32);
      fields.push(`idle_timeout_seconds ${config.idleTimeoutSeconds}`);
    }
    what.push(`config {${fields.join(", ")}}`);
    return config;
  }

  #prompt(what: string[]): string {
    const rng = this.rng;
    if (rng.chance(0.75)) return `fuzz ${rng.int(100_000)}`;
    if (this.#big()) {
      const size = rng.pick([MiB - 64, MiB + 1]);
      what.push(`prompt of ${size} chars`);
      return "p".repeat(size);
    }
    const prompt = rng.pick(PROMPTS);
    what.push(`prompt ${JSON.stringify(prompt.slice(0, 16))}`);
    return prompt;
  }

  /** A message for the method, valid in form, with hostile values in its fields. */
  #message(t: Target, what: string[]): { schema: DescMessage; message: Message } {
    const rng = this.rng;
    switch (t.method.name) {
      case "Execute":
        return {
          schema: ExecuteRequestSchema,
          message: create(ExecuteRequestSchema, {
            sessionId: this.#sessionId(false, what, true),
            prompt: this.#prompt(what),
            requestId: rng.weighted([
              [6, ""],
              [2, `r-${rng.int(20)}`],
              [1, "r".repeat(129)],
              [1, this.#weird()],
            ]),
            config: this.#config(what),
            queue: rng.chance(0.5),
          }),
        };
      case "Subscribe": {
        const afterSeq = rng.chance(0.6) ? BigInt(rng.int(12)) : rng.pick(U64);
        if (afterSeq > 11n) what.push(`after_seq ${afterSeq}`);
        const follow = rng.chance(0.1);
        if (follow) what.push("follow");
        return {
          schema: SubscribeRequestSchema,
          message: create(SubscribeRequestSchema, {
            sessionId: this.#sessionId(true, what, false),
            afterSeq,
            follow,
            incarnation: rng.chance(0.85) ? "" : this.#weird(),
          }),
        };
      }
      case "GetSnapshot":
        return { schema: GetSnapshotRequestSchema, message: create(GetSnapshotRequestSchema, { sessionId: this.#sessionId(true, what, false) }) };
      case "GetSessionStats":
        return { schema: GetSessionStatsRequestSchema, message: create(GetSessionStatsRequestSchema, { sessionId: this.#sessionId(true, what, false) }) };
      case "StopSession":
        return { schema: StopSessionRequestSchema, message: create(StopSessionRequestSchema, { sessionId: this.#sessionId(false, what, false) }) };
      case "DeleteSession":
        return {
          schema: DeleteSessionRequestSchema,
          message: create(DeleteSessionRequestSchema, { sessionId: this.#sessionId(false, what, false), deleteTranscript: rng.chance(0.5) }),
        };
      case "ListSessions":
        return { schema: ListSessionsRequestSchema, message: create(ListSessionsRequestSchema) };
      case "ListAllSessions":
        return { schema: ListAllSessionsRequestSchema, message: create(ListAllSessionsRequestSchema, { tenant: rng.chance(0.5) ? "default" : this.#weird() }) };
      case "StopTenantSession":
        return {
          schema: StopTenantSessionRequestSchema,
          message: create(StopTenantSessionRequestSchema, { tenant: rng.pick(["default", "", "other", "\u0000"]), sessionId: rng.pick(POOL) }),
        };
      case "DeleteTenantSession":
        return {
          schema: DeleteTenantSessionRequestSchema,
          message: create(DeleteTenantSessionRequestSchema, { tenant: rng.pick(["default", "", "other"]), sessionId: rng.pick(POOL), deleteTranscript: rng.chance(0.5) }),
        };
      case "Interrupt":
        return { schema: InterruptRequestSchema, message: create(InterruptRequestSchema, { sessionId: rng.pick(POOL), turnId: rng.pick(["", "x", "\u0000", "t".repeat(200)]) }) };
      case "ListProviders":
        return { schema: ListProvidersRequestSchema, message: create(ListProvidersRequestSchema) };
      case "RespondPermission": {
        const decision = rng.pick([
          { case: undefined },
          { case: "allow" as const, value: { updatedInputJson: rng.pick(["", "{}", "[", "null", this.#weird()]), forSession: rng.chance(0.5) } },
          { case: "deny" as const, value: { message: rng.pick(["", this.#weird(), "m".repeat(5000)]), interrupt: rng.chance(0.5) } },
          { case: "answer" as const, value: { answers: { [this.#weird()]: this.#weird(), __proto__: "x", constructor: "y" } } },
        ]);
        return {
          schema: RespondPermissionRequestSchema,
          message: create(RespondPermissionRequestSchema, { sessionId: rng.pick(POOL), requestId: rng.pick(["", "r", this.#weird(), "r".repeat(200)]), decision }),
        };
      }
      case "Steer":
        return { schema: SteerRequestSchema, message: create(SteerRequestSchema, { sessionId: rng.pick(POOL), prompt: this.#prompt(what), turnId: rng.pick(["", "\u0000", "t".repeat(200)]) }) };
      case "CancelTurn":
        return { schema: CancelTurnRequestSchema, message: create(CancelTurnRequestSchema, { sessionId: rng.pick(POOL), turnId: rng.pick(["", "x", "\u0000", "t".repeat(200)]) }) };
      case "ChangeSettings":
        return {
          schema: ChangeSettingsRequestSchema,
          message: create(ChangeSettingsRequestSchema, {
            sessionId: rng.pick(POOL),
            ...(rng.chance(0.7) ? { model: rng.pick(["", "-x", "sonnet", this.#weird()]) } : {}),
            ...(rng.chance(0.5) ? { permissionMode: rng.pick(["", "plan", "bypassPermissions", this.#weird()]) } : {}),
          }),
        };
      case "ListModels":
        return { schema: ListModelsRequestSchema, message: create(ListModelsRequestSchema, { sessionId: rng.pick(POOL) }) };
      case "ResetSession":
        return { schema: ResetSessionRequestSchema, message: create(ResetSessionRequestSchema, { sessionId: this.#sessionId(false, what, false) }) };
      case "ForkSession":
        return {
          schema: ForkSessionRequestSchema,
          message: create(ForkSessionRequestSchema, {
            sessionId: rng.pick(POOL),
            newSessionId: this.#sessionId(false, what, true),
            upToTurnId: rng.pick(["", "t", this.#weird()]),
            title: rng.pick(["", this.#weird(), "t".repeat(300)]),
          }),
        };
      case "SetTitle":
        return { schema: SetTitleRequestSchema, message: create(SetTitleRequestSchema, { sessionId: rng.pick(POOL), title: rng.pick(["", "ok", this.#weird(), "t".repeat(300)]) }) };
      case "SetRuleBypass":
        return {
          schema: SetRuleBypassRequestSchema,
          message: create(SetRuleBypassRequestSchema, { tenant: rng.pick(["default", "", "\u0000"]), sessionId: rng.pick(POOL), seconds: rng.pick(U32) }),
        };
      case "GetServerInfo":
        return { schema: GetServerInfoRequestSchema, message: create(GetServerInfoRequestSchema) };
      case "Drain":
        return { schema: DrainRequestSchema, message: create(DrainRequestSchema, { graceSeconds: rng.pick(U32) }) };
      case "ListAuditEvents":
        return { schema: ListAuditEventsRequestSchema, message: create(ListAuditEventsRequestSchema, { afterId: rng.pick(U64), limit: rng.pick([0, 1, 1000, 1001, ...U32]) }) };
      case "GetSessionLogs":
        // Never follow: a following stream on a live session would wait for ever.
        return {
          schema: GetSessionLogsRequestSchema,
          message: create(GetSessionLogsRequestSchema, { tenant: rng.pick(["default", "", "\u0000"]), sessionId: rng.pick(POOL), afterIndex: rng.pick(U64), limit: rng.pick([0, 1, 1000, 1001, ...U32]) }),
        };
      default:
        throw new Error(`no message for ${t.method.name}`);
    }
  }

  // A mutating call must never reach the protected session, whatever its bytes became.
  #guard(t: Target, plain: Buffer, what: string[]): Buffer {
    if (t.readOnly || !plain.includes(this.#context.protectedSession)) return plain;
    what.push("(protected session id removed)");
    return Buffer.from(plain.toString("latin1").split(this.#context.protectedSession).join("fz-0"), "latin1");
  }

  // ------------------------------------------------------------ body mutations

  /** The binary form of a message, mutated (or not). */
  #binaryBody(t: Target, what: string[]): Buffer {
    const { schema, message } = this.#message(t, what);
    const valid = Buffer.from(toBinary(schema, message));
    return this.#guard(t, this.#mutateBinary(valid, what), what);
  }

  #mutateBinary(valid: Buffer, what: string[]): Buffer {
    const rng = this.rng;
    const mutation = rng.weighted([
      [30, "none"],
      [14, "flip"],
      [8, "truncate"],
      [7, "extend"],
      [7, "random"],
      [4, "wrong wire type"],
      [4, "huge length"],
      [3, "deep groups"],
      [3, "varint overflow"],
      [4, "invalid utf-8"],
      [3, "bad field number"],
      [3, "repeated"],
      [3, "empty"],
      [3, "unknown fields"],
      [2, "lone end group"],
    ] as const);
    if (mutation !== "none") what.push(`binary: ${mutation}`);
    switch (mutation) {
      case "none":
        return valid;
      case "flip": {
        const out = Buffer.from(valid.length > 0 ? valid : rng.bytes(4));
        for (let n = rng.range(1, 8); n > 0; n -= 1) {
          const at = rng.int(out.length);
          out[at] = (out[at] ?? 0) ^ rng.range(1, 255);
        }
        return out;
      }
      case "truncate":
        return valid.subarray(0, valid.length > 1 ? rng.int(valid.length) : 0);
      case "extend":
        return Buffer.concat([valid, rng.bytes(rng.range(1, 64))]);
      case "random":
        return rng.bytes(rng.pick([1, 2, 5, 16, 64, 512, 4096]));
      case "wrong wire type": {
        // Field 1 (or 2) with each wrong wire type: varint, fixed64, fixed32, groups.
        const field = rng.range(1, 5);
        const wire = rng.pick([0, 1, 3, 4, 5, 6, 7]);
        const tail = wire === 0 ? [0x96, 0x01] : wire === 1 ? [1, 2, 3, 4, 5, 6, 7, 8] : wire === 5 ? [1, 2, 3, 4] : [];
        return Buffer.concat([valid, Buffer.from([(field << 3) | wire, ...tail])]);
      }
      case "huge length": {
        const lengths = [
          [0xff, 0xff, 0xff, 0xff, 0x0f],
          [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f],
          [0x80, 0x80, 0x80, 0x80, 0x08],
          [0x81, 0x80, 0x80, 0x02],
        ];
        return Buffer.concat([valid, Buffer.from([(rng.range(1, 5) << 3) | 2, ...rng.pick(lengths)]), rng.bytes(rng.int(16))]);
      }
      case "deep groups": {
        const depth = rng.pick([100, 1000, 10_000, 100_000]);
        what.push(`${depth} nested groups`);
        return Buffer.concat([valid, Buffer.alloc(depth * 2, Buffer.from([0x9b, 0x06]))]); // field 99, start group
      }
      case "varint overflow":
        return Buffer.concat([valid, Buffer.from([rng.pick([0x10, 0x18, 0x40]), ...Array(11).fill(0xff), 0x01])]);
      case "invalid utf-8": {
        const bad = rng.pick([[0xc3, 0x28], [0xff], [0xed, 0xa0, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80], [0xc0, 0x80]]);
        return Buffer.concat([Buffer.from([0x0a, bad.length, ...bad]), valid]);
      }
      case "bad field number": {
        const tag = rng.pick([[0x02, 0x00], [0xfa, 0xff, 0xff, 0xff, 0x0f, 0x00], [0x82, 0x80, 0x80, 0x80, 0x10, 0x00], [0x00]]);
        return Buffer.concat([valid, Buffer.from(tag)]);
      }
      case "repeated":
        return Buffer.concat(Array(rng.range(2, 50)).fill(valid));
      case "empty":
        return Buffer.alloc(0);
      case "unknown fields": {
        const parts: Buffer[] = [valid];
        for (let n = rng.range(1, 20); n > 0; n -= 1) {
          const field = rng.range(20, 5000);
          const payload = rng.bytes(rng.int(32));
          parts.push(Buffer.from(varint(BigInt((field << 3) | 2))), Buffer.from(varint(BigInt(payload.length))), payload);
        }
        return Buffer.concat(parts);
      }
      case "lone end group":
        return Buffer.concat([valid, Buffer.from([0x0c])]);
    }
  }

  /** The JSON form of a message, mutated (or not). */
  #jsonBody(t: Target, what: string[]): Buffer {
    const { schema, message } = this.#message(t, what);
    const json = toJson(schema, message, { useProtoFieldName: this.rng.chance(0.2) }) as Record<string, unknown>;
    return this.#guard(t, this.#mutateJson(schema, json, what), what);
  }

  #mutateJson(schema: DescMessage, json: Record<string, unknown>, what: string[]): Buffer {
    const rng = this.rng;
    const fieldNames = schema.fields.flatMap((f) => [f.jsonName, f.name]);
    const someKey = () => (fieldNames.length > 0 && rng.chance(0.85) ? rng.pick(fieldNames) : rng.pick(["x", "", "__proto__", "constructor", "sessionID", "session-id", "\u0000"]));
    const text = JSON.stringify(json);
    const mutation = rng.weighted([
      [28, "none"],
      [18, "wrong value"],
      [5, "unknown key"],
      [5, "deep nesting"],
      [5, "random json"],
      [4, "not an object"],
      [5, "truncate"],
      [6, "flip"],
      [3, "duplicate key"],
      [3, "framing"],
      [3, "invalid utf-8"],
      [3, "config of wrong type"],
      [5, "lone surrogate of wrong type"],
      [2, "empty"],
      [2, "huge string"],
    ] as const);
    if (mutation !== "none") what.push(`json: ${mutation}`);
    switch (mutation) {
      case "none":
        return Buffer.from(text);
      case "wrong value": {
        const key = someKey();
        const value = rng.pick(JSON_VALUES);
        what.push(`${JSON.stringify(key)}: ${value}`);
        return Buffer.from(setJsonKey(text, key, value));
      }
      case "unknown key":
        return Buffer.from(setJsonKey(text, rng.pick(["x", "sessionID", "session-id", "__proto__", "constructor", "prototype", "é", "\\u0000", "follow_me"]), "1"));
      case "deep nesting": {
        const depth = rng.pick([64, 1000, 10_000, 100_000]);
        const open = rng.chance(0.5) ? "[" : '{"a":';
        const close = open === "[" ? "]" : "}";
        what.push(`depth ${depth} of ${open}`);
        const nested = open.repeat(depth) + (open === "[" ? "" : "1") + close.repeat(depth);
        return Buffer.from(rng.chance(0.5) ? nested : setJsonKey(text, someKey(), nested));
      }
      case "random json":
        return Buffer.from(rng.chance(0.5) ? JSON.stringify(randomJson(rng, 5, fieldNames)) : setJsonKey(text, someKey(), JSON.stringify(randomJson(rng, 4, fieldNames))));
      case "not an object":
        return Buffer.from(rng.pick(["[]", '"str"', "1", "null", "true", '[{"sessionId":"fz-0"}]', "-0", '""']));
      case "truncate":
        return Buffer.from(text.slice(0, rng.int(Math.max(1, text.length))));
      case "flip": {
        const out = Buffer.from(text);
        for (let n = rng.range(1, 4); n > 0; n -= 1) {
          const at = rng.int(out.length);
          out[at] = (out[at] ?? 0) ^ (1 << rng.int(8));
        }
        return out;
      }
      case "duplicate key": {
        const key = someKey();
        return Buffer.from(`{${JSON.stringify(key)}:"fz-0",${text.slice(1, -1)}${text.length > 2 ? "," : ""}${JSON.stringify(key)}:${rng.pick(JSON_VALUES)}}`);
      }
      case "framing":
        return Buffer.from(rng.pick(["\ufeff" + text, `  \n\t${text}\n `, `${text}garbage`, `${text}${text}`, `${text}\u0000`, `/* c */${text}`]));
      case "invalid utf-8":
        return Buffer.concat([Buffer.from('{"sessionId":"'), Buffer.from(rng.pick([[0xc3, 0x28], [0xff, 0xfe], [0xed, 0xa0, 0x80], [0x80]])), Buffer.from('"}')]);
      case "config of wrong type":
        return Buffer.from(setJsonKey(text, "config", rng.pick(['"x"', "[]", "1", '{"workDir":1}', '{"idleTimeoutSeconds":-1}', '{"idleTimeoutSeconds":4294967296}', '{"allowedTools":"Edit"}', '{"allowedTools":[1,null]}', '{"model":{}}', "null"])));
      case "lone surrogate of wrong type": {
        // Not valid for the field, so the parse error quotes it: an error message that is
        // no well-formed UTF-16 (gRPC percent-encodes messages into grpc-message).
        const typed = schema.fields.filter((f) => !(f.fieldKind === "scalar" && f.scalar === ScalarType.STRING));
        const value = rng.pick(['"\\ud800"', '"x\\udfff"', '"\\udfff\\ud800"']);
        if (typed.length === 0) {
          const key = someKey();
          what.push(`${JSON.stringify(key)}: ${value}`);
          return Buffer.from(setJsonKey(text, key, value));
        }
        const field = rng.pick(typed);
        what.push(`${JSON.stringify(field.jsonName)}: ${value}`);
        // Without the field's other spelling, so that this value is the one the parser reports.
        const others = { ...json };
        delete others[field.name];
        delete others[field.jsonName];
        return Buffer.from(setJsonKey(JSON.stringify(others), field.jsonName, value));
      }
      case "empty":
        return Buffer.alloc(0);
      case "huge string": {
        const size = this.#big() ? MiB : 64 * 1024;
        what.push(`${size} chars`);
        return Buffer.from(setJsonKey(text, someKey(), JSON.stringify("s".repeat(size))));
      }
    }
  }

  // ------------------------------------------------------------ compression

  /**
   * Compresses a payload (a bare message, or an envelope's content) or claims to.
   * Returns the bytes, the encoding to announce (if any) and whether they were compressed.
   */
  #compress(payload: Buffer, what: string[]): { bytes: Buffer; encoding?: string; compressed: boolean } {
    const rng = this.rng;
    const how = rng.weighted([
      [82, "none"],
      [5, "gzip"],
      [2, "br"],
      [2, "gzip garbage"],
      [2, "gzip truncated"],
      [1, "br truncated"],
      [3, "bomb"],
      [2, "unknown encoding"],
      [1, "claims gzip"],
      [1, "gzip twice"],
    ] as const);
    if (how === "none") return { bytes: payload, compressed: false };
    what.push(`compression: ${how}`);
    switch (how) {
      case "gzip":
        return { bytes: zlib.gzipSync(payload), encoding: rng.pick(["gzip", "gzip", "GZIP"]), compressed: true };
      case "br":
        return { bytes: zlib.brotliCompressSync(payload), encoding: "br", compressed: true };
      case "gzip garbage":
        return { bytes: Buffer.concat([Buffer.from([0x1f, 0x8b, 0x08, 0x00]), rng.bytes(rng.range(0, 64))]), encoding: "gzip", compressed: true };
      case "gzip truncated": {
        const full = zlib.gzipSync(payload.length > 0 ? payload : Buffer.from("x"));
        return { bytes: full.subarray(0, rng.int(full.length)), encoding: "gzip", compressed: true };
      }
      case "br truncated": {
        const full = zlib.brotliCompressSync(payload.length > 0 ? payload : Buffer.from("x"));
        return { bytes: full.subarray(0, rng.int(full.length)), encoding: "br", compressed: true };
      }
      case "bomb": {
        const name = rng.pick(Object.keys(this.#bombs));
        what.push(name);
        return { bytes: this.#bombs[name] as Buffer, encoding: name.startsWith("brotli") ? "br" : "gzip", compressed: true };
      }
      case "unknown encoding":
        return { bytes: zlib.deflateSync(payload), encoding: rng.pick(["deflate", "zstd", "x-unknown", "gzip, br", "identity;q=0", ""]), compressed: true };
      case "claims gzip":
        return { bytes: payload, encoding: "gzip", compressed: true };
      case "gzip twice":
        return { bytes: zlib.gzipSync(zlib.gzipSync(payload)), encoding: "gzip", compressed: true };
    }
  }

  // ------------------------------------------------------------ envelopes

  /** Length-prefixed envelopes around a (compressed) payload, mutated (or not). */
  #envelopes(payload: Buffer, compressed: boolean, json: boolean, what: string[]): Buffer {
    const rng = this.rng;
    const flags = compressed ? 1 : 0;
    const mutation = rng.weighted([
      [70, "none"],
      [4, "length off"],
      [4, "huge length"],
      [4, "flags"],
      [3, "two messages"],
      [2, "trailing partial header"],
      [3, "bare message"],
      [2, "empty"],
      [2, "partial header"],
      [2, "end-stream envelope"],
      [2, "compressed flag without encoding"],
    ] as const);
    if (mutation !== "none") what.push(`envelope: ${mutation}`);
    switch (mutation) {
      case "none":
        return envelope(flags, payload);
      case "length off": {
        const delta = rng.pick([-10, -2, -1, 1, 2, 100]);
        return envelope(flags, payload, Math.max(0, payload.length + delta));
      }
      case "huge length": {
        const length = rng.pick([0xffffffff, 0x7fffffff, 4 * MiB + 1, 4 * MiB]);
        what.push(`announces ${length}`);
        return envelope(flags, payload, length);
      }
      case "flags": {
        const bad = rng.pick([0x02, 0x03, 0x80, 0x81, 0xff, 0x04, 0x40]);
        what.push(`flags 0x${bad.toString(16)}`);
        return envelope(bad, payload);
      }
      case "two messages":
        return Buffer.concat([envelope(flags, payload), envelope(flags, payload)]);
      case "trailing partial header":
        return Buffer.concat([envelope(flags, payload), Buffer.from([0, 0, 0])]);
      case "bare message":
        return payload;
      case "empty":
        return Buffer.alloc(0);
      case "partial header":
        return envelope(flags, payload).subarray(0, rng.range(1, 4));
      case "end-stream envelope":
        return Buffer.concat([envelope(flags, payload), envelope(0x02, Buffer.from(json ? "{}" : "{\"error\":{\"code\":\"internal\"}}"))]);
      case "compressed flag without encoding":
        return envelope(flags | 1, payload);
    }
  }

  // ------------------------------------------------------------ credentials and headers

  #auth(what: string[]): { header?: string; kind: AuthKind } {
    const rng = this.rng;
    const token = this.#context.token;
    const kind = rng.weighted([
      [80, "valid"],
      [7, "variant"],
      [5, "missing"],
      [8, "wrong"],
    ] as const);
    if (kind === "valid") return { header: `Bearer ${token}`, kind };
    if (kind === "missing") {
      what.push("no credential");
      return { kind };
    }
    if (kind === "variant") {
      const header = rng.pick([`bearer ${token}`, `BEARER ${token}`, `BeArEr ${token}`, `Bearer  ${token}`, `Bearer\t${token}`, `bEARER \t ${token}`]);
      what.push(`credential spelled ${JSON.stringify(header.replace(token, "<token>"))}`);
      return { header, kind };
    }
    const header = rng.pick([
      "Bearer wrong-token-0123456789abcdef",
      "Bearer",
      "Bearer ",
      token,
      `Basic ${Buffer.from(`user:${token}`).toString("base64")}`,
      `Bearer ${token}x`,
      `Bearer ${token.slice(0, -1)}`,
      `Bearer ${token.toUpperCase()}`,
      `Bearer ${token} ${token}`,
      `Bearer ${"t".repeat(8000)}`,
      `Bearer tökén-${token}`,
      `Token ${token}`,
      `Bearer,${token}`,
      `Bearer=${token}`,
      "Bearer null",
      "Bearer undefined",
    ]);
    what.push(`credential ${JSON.stringify(header.replace(token, "<token>").slice(0, 40))}`);
    return { header, kind: "wrong" };
  }

  /** The path for a target: canonical, or (rarely) a mutation that names the same method or none. */
  #path(t: Target, what: string[]): { path: string; canonical: boolean } {
    const rng = this.rng;
    const path = pathOf(t);
    if (!rng.chance(0.06)) return { path, canonical: true };
    const mutated = rng.pick([
      path.toLowerCase(),
      `${path}/`,
      `${path}?x=1`,
      `${path}?`,
      `${path}#frag`,
      `/${path}`,
      `${path}%00`,
      `/${t.service.typeName}/`,
      `/${t.service.typeName}/Nope`,
      `/${t.service.typeName}`,
      "/",
      `${path}/../GetSnapshot`,
      path.replace("/", "%2F"),
      `/hotplex.v2.${t.service.name}/${t.method.name}`,
      `${path};x`,
    ]);
    what.push(`path ${JSON.stringify(mutated)}`);
    return { path: mutated, canonical: false };
  }

  // Extra headers of every protocol, mostly none.
  #extraHeaders(headers: Record<string, string>, what: string[]): boolean {
    const rng = this.rng;
    if (!rng.chance(0.1)) return true;
    const [name, value] = rng.pick([
      ["user-agent", "x".repeat(4000)],
      ["accept", "*/*"],
      ["x-forwarded-for", "1.2.3.4, 5.6.7.8"],
      ["x-custom-bin", "!!!not base64!!!"],
      ["x-custom-bin", "AAEC"],
      ["cookie", "a=b"],
      ["x-empty", ""],
      ["grpc-message", "%"],
      ["content-language", "é"],
      ["expect", "100-continue"],
      ["grpc-status", "13"],
      ["connect-content-encoding", "gzip"],
      ["accept-encoding", "gzip, br, zstd"],
    ] as const);
    what.push(`header ${name}: ${value.slice(0, 20)}`);
    headers[name] = value;
    return name === "user-agent" || name === "accept" || name === "x-forwarded-for" || name === "cookie" || name === "x-empty";
  }

  // ------------------------------------------------------------ protocols

  #connectUnary(id: number, format: "json" | "proto", kind: "h1" | "h2", protocol: ProtocolName): HttpCase {
    const rng = this.rng;
    const what: string[] = [];
    const t = this.#unaryTarget();
    let plain = format === "json" ? this.#jsonBody(t, what) : this.#binaryBody(t, what);
    if (rng.chance(0.03)) {
      // The other format's bytes under this format's content type.
      what.push("body in the other format");
      plain = format === "json" ? this.#binaryBody(t, what) : this.#jsonBody(t, what);
    }
    const headers: Record<string, string> = {};
    const auth = this.#auth(what);
    if (auth.header !== undefined) headers.authorization = auth.header;
    let sane = true;
    const canonicalType = format === "json" ? "application/json" : "application/proto";
    const contentType = rng.chance(0.88)
      ? canonicalType
      : rng.pick(
          format === "json"
            ? ["application/json; charset=utf-8", "APPLICATION/JSON", "application/json;charset=UTF8", "application/json; charset=latin1", "text/json", "application/jsonx", "", "application/proto", "application/connect+json", "multipart/form-data; boundary=x", "application/x-www-form-urlencoded", "application/json, application/proto", "*/*"]
            : ["application/x-protobuf", "application/protobuf", "APPLICATION/PROTO", "application/proto; charset=utf-8", "application/json", "application/connect+proto", "application/grpc", "application/octet-stream", "", "text/plain"],
        );
    if (contentType !== canonicalType) {
      what.push(`content-type ${JSON.stringify(contentType)}`);
      sane = false;
    }
    if (!rng.chance(0.03)) headers["content-type"] = contentType;
    else {
      what.push("no content-type");
      sane = false;
    }
    const { bytes, encoding } = this.#compress(plain, what);
    if (encoding !== undefined) {
      headers["content-encoding"] = encoding;
      sane = false;
    }
    if (rng.chance(0.08)) {
      headers["connect-protocol-version"] = rng.pick(["1", "2", "", "abc", "1.0"]);
      what.push(`connect-protocol-version ${JSON.stringify(headers["connect-protocol-version"])}`);
      if (headers["connect-protocol-version"] !== "1") sane = false;
    }
    if (rng.chance(0.08)) {
      headers["connect-timeout-ms"] = rng.pick(["1", "0", "5000", "abc", "-1", "99999999999", "9999999999", "86400000", "86400001", "1.5", " 100"]);
      what.push(`connect-timeout-ms ${JSON.stringify(headers["connect-timeout-ms"])}`);
      sane = false;
    }
    if (!this.#extraHeaders(headers, what)) sane = false;
    const { path, canonical } = this.#path(t, what);
    if (!canonical) sane = false;
    // A few as GET requests with the message in the query (these methods are no GETs).
    if (rng.chance(0.03)) {
      what.push("GET with the message in the query");
      const query = `?connect=v1&encoding=${format}&message=${format === "json" ? encodeURIComponent(plain.toString("utf8")) : plain.toString("base64url")}${format === "proto" ? "&base64=1" : ""}`;
      return { kind, id, protocol, framing: "connect-unary", method: methodName(t), httpMethod: "GET", path: pathOf(t) + query, headers: { ...(auth.header ? { authorization: auth.header } : {}) }, body: Buffer.alloc(0), auth: auth.kind, sane: false, what };
    }
    return { kind, id, protocol, framing: "connect-unary", method: methodName(t), httpMethod: "POST", path, headers, body: bytes, auth: auth.kind, sane, what };
  }

  /** The deadline header value of a streaming call: bounded when the call may follow forever. */
  #deadline(t: Target, unit: "connect" | "grpc", what: string[]): string | undefined {
    const rng = this.rng;
    const mayFollow = t.method.name === "Subscribe";
    const bounded = unit === "connect" ? ["2000", "2000", "2000", "800", "1", "0"] : ["2S", "2S", "2000m", "800m", "2000000u", "1n", "0S"];
    const invalid = unit === "connect" ? ["abc", "-5", "99999999999", "86400001", "1.5", ""] : ["x", "2", "123456789S", "25H", "2s", "-1S", ""];
    const long = unit === "connect" ? ["86400000", "9999999", "60000"] : ["24H", "99999999m", "60S"];
    if (mayFollow) {
      if (rng.chance(0.85)) return rng.pick(bounded.slice(0, 3));
      const value = rng.chance(0.5) ? rng.pick(bounded) : rng.pick(invalid);
      what.push(`deadline ${JSON.stringify(value)}`);
      return value;
    }
    const choice = rng.weighted([
      [70, "none"],
      [10, "bounded"],
      [10, "invalid"],
      [10, "long"],
    ] as const);
    if (choice === "none") return undefined;
    const value = rng.pick(choice === "bounded" ? bounded : choice === "invalid" ? invalid : long);
    what.push(`deadline ${JSON.stringify(value)}`);
    return value;
  }

  #connectStream(id: number, kind: "h1" | "h2", protocol: ProtocolName): HttpCase {
    const rng = this.rng;
    const what: string[] = [];
    // Mostly the streaming methods; a few unary ones with a streaming content type.
    const t = rng.chance(0.92) ? this.#streamTarget() : this.#unaryTarget();
    const json = rng.chance(0.35);
    const plain = json ? this.#jsonBody(t, what) : this.#binaryBody(t, what);
    const { bytes, encoding, compressed } = this.#compress(plain, what);
    const body = this.#envelopes(bytes, compressed, json, what);
    const headers: Record<string, string> = {};
    const auth = this.#auth(what);
    if (auth.header !== undefined) headers.authorization = auth.header;
    let sane = t.method.methodKind !== "unary";
    const canonicalType = json ? "application/connect+json" : "application/connect+proto";
    const contentType = rng.chance(0.9)
      ? canonicalType
      : rng.pick(["application/connect+json; charset=utf-8", "APPLICATION/CONNECT+PROTO", "application/connect", "application/connect+thrift", "application/connect+proto; x=y", "application/json", "application/proto", "application/grpc", ""]);
    if (contentType !== canonicalType) {
      what.push(`content-type ${JSON.stringify(contentType)}`);
      sane = false;
    }
    headers["content-type"] = contentType;
    if (encoding !== undefined) {
      headers["connect-content-encoding"] = encoding;
      sane = false;
    }
    if (rng.chance(0.05)) {
      headers["connect-accept-encoding"] = rng.pick(["gzip", "br", "zstd", "", "gzip;q=0"]);
      what.push(`connect-accept-encoding ${JSON.stringify(headers["connect-accept-encoding"])}`);
    }
    const deadline = this.#deadline(t, "connect", what);
    if (deadline !== undefined) headers["connect-timeout-ms"] = deadline;
    if (deadline !== undefined && !acceptedDeadline(deadline, "connect")) sane = false;
    if (rng.chance(0.05)) {
      headers["connect-protocol-version"] = rng.pick(["1", "2", "x"]);
      what.push(`connect-protocol-version ${headers["connect-protocol-version"]}`);
      if (headers["connect-protocol-version"] !== "1") sane = false;
    }
    if (!this.#extraHeaders(headers, what)) sane = false;
    const { path, canonical } = this.#path(t, what);
    if (!canonical) sane = false;
    return { kind, id, protocol, framing: "connect-stream", method: methodName(t), httpMethod: "POST", path, headers, body, auth: auth.kind, sane, what };
  }

  #grpc(id: number): HttpCase {
    const rng = this.rng;
    const what: string[] = [];
    const t = this.#anyTarget();
    const json = rng.chance(0.2);
    const plain = json ? this.#jsonBody(t, what) : this.#binaryBody(t, what);
    const { bytes, encoding, compressed } = this.#compress(plain, what);
    const body = this.#envelopes(bytes, compressed, json, what);
    const headers: Record<string, string> = {};
    const auth = this.#auth(what);
    if (auth.header !== undefined) headers.authorization = auth.header;
    let sane = true;
    const canonicalType = json ? "application/grpc+json" : rng.pick(["application/grpc", "application/grpc+proto"]);
    const contentType = rng.chance(0.9)
      ? canonicalType
      : rng.pick(["APPLICATION/GRPC", "application/grpc;foo=bar", "application/grpc+thrift", "application/grpc+json; charset=utf-8", "application/grpc-web", "application/connect+proto", "application/json", "text/plain", ""]);
    if (contentType !== canonicalType) {
      what.push(`content-type ${JSON.stringify(contentType)}`);
      sane = false;
    }
    headers["content-type"] = contentType;
    // (HTTP/2 allows no other te value; Node's client refuses to send one.)
    if (rng.chance(0.9)) headers.te = "trailers";
    else what.push("no te");
    if (encoding !== undefined) {
      headers["grpc-encoding"] = encoding;
      sane = false;
    }
    if (rng.chance(0.05)) {
      headers["grpc-accept-encoding"] = rng.pick(["gzip", "br", "identity", "zstd", ""]);
      what.push(`grpc-accept-encoding ${JSON.stringify(headers["grpc-accept-encoding"])}`);
    }
    const deadline = this.#deadline(t, "grpc", what);
    if (deadline !== undefined) headers["grpc-timeout"] = deadline;
    if (deadline !== undefined && !acceptedDeadline(deadline, "grpc")) sane = false;
    if (rng.chance(0.03)) {
      headers[":authority"] = rng.pick(["", "a b", "[::1", "x".repeat(2000), "evil.example:99999", "%zz"]);
      what.push(`:authority ${JSON.stringify(headers[":authority"]?.slice(0, 20))}`);
      sane = false;
    }
    if (!this.#extraHeaders(headers, what)) sane = false;
    const { path, canonical } = this.#path(t, what);
    if (!canonical) sane = false;
    return { kind: "h2", id, protocol: "grpc", framing: "grpc", method: methodName(t), httpMethod: "POST", path, headers, body, auth: auth.kind, sane, what };
  }

  #grpcWeb(id: number): HttpCase {
    const rng = this.rng;
    const what: string[] = [];
    const t = this.#anyTarget();
    const style = rng.weighted([
      [75, "proto"],
      [8, "text"],
      [17, "json"],
    ] as const);
    const json = style === "json";
    const plain = json ? this.#jsonBody(t, what) : this.#binaryBody(t, what);
    const { bytes, encoding, compressed } = this.#compress(plain, what);
    let body = this.#envelopes(bytes, compressed, json, what);
    if (style === "text") {
      const bad = rng.chance(0.2);
      body = bad ? Buffer.from(rng.pick(["!!!!", "AAA", "====", "AAAAAA==AAAA", body.toString("base64").slice(1)])) : Buffer.from(body.toString("base64"));
      what.push(bad ? "grpc-web-text: bad base64" : "grpc-web-text");
    }
    const headers: Record<string, string> = {};
    const auth = this.#auth(what);
    if (auth.header !== undefined) headers.authorization = auth.header;
    let sane = true;
    const canonicalType = style === "text" ? "application/grpc-web-text" : json ? "application/grpc-web+json" : rng.pick(["application/grpc-web+proto", "application/grpc-web"]);
    const contentType = rng.chance(0.9)
      ? canonicalType
      : rng.pick(["application/grpc-web-text+proto", "APPLICATION/GRPC-WEB", "application/grpc-web+thrift", "application/grpc-web;x=y", "application/grpc", "application/json", ""]);
    if (contentType !== canonicalType) {
      what.push(`content-type ${JSON.stringify(contentType)}`);
      sane = false;
    }
    headers["content-type"] = contentType;
    if (rng.chance(0.7)) headers["x-grpc-web"] = "1";
    if (encoding !== undefined) {
      headers["grpc-encoding"] = encoding;
      sane = false;
    }
    const deadline = this.#deadline(t, "grpc", what);
    if (deadline !== undefined) headers["grpc-timeout"] = deadline;
    if (deadline !== undefined && !acceptedDeadline(deadline, "grpc")) sane = false;
    if (!this.#extraHeaders(headers, what)) sane = false;
    const { path, canonical } = this.#path(t, what);
    if (!canonical) sane = false;
    // (connect-es serves no grpc-web-text: such a request is an HTTP 415 before any credential check.)
    if (style === "text") sane = false;
    return { kind: "h1", id, protocol: "grpc-web", framing: "grpc-web", method: methodName(t), httpMethod: "POST", path, headers, body, auth: auth.kind, sane, what };
  }

  // ------------------------------------------------------------ raw sockets

  #raw(id: number): RawCase {
    const rng = this.rng;
    const token = this.#context.token;
    const list = "/hotplex.v1.SessionService/ListSessions";
    const post = (path: string, headers: string[], body: string | Buffer, version = "1.1", contentLength = true) =>
      Buffer.concat([
        Buffer.from(
          `POST ${path} HTTP/${version}\r\n${headers.map((h) => `${h}\r\n`).join("")}${contentLength ? `Content-Length: ${Buffer.byteLength(body)}\r\n` : ""}\r\n`,
          "latin1",
        ),
        Buffer.from(body),
      ]);
    const json = "Content-Type: application/json";
    const bearer = `Authorization: Bearer ${token}`;
    const kind = rng.weighted([
      [20, "bad host"],
      [10, "http/1.0"],
      [22, "garbage line"],
      [22, "broken headers"],
      [18, "h2 preface"],
      [8, "body"],
    ] as const);
    const what: string[] = [kind];
    const done = (bytes: Buffer, expectStatus?: number[]): RawCase => ({ kind: "raw", id, protocol: "raw", method: "raw", bytes, expectStatus, what });
    switch (kind) {
      case "bad host": {
        const host = rng.pick(["", "a b/c", "[::1", "x:99999", "h".repeat(5000), "user@host", "host/path", "localhost:0", "%zz", "é", "\t", "[::1]:80", "1.2.3.4:-1", "evil.example"]);
        const authorized = rng.chance(0.5);
        what.push(`Host ${JSON.stringify(host.slice(0, 20))}`, authorized ? "with credential" : "without");
        const twice = rng.chance(0.2);
        if (twice) what.push("two Host headers");
        const headers = [`Host: ${host}`, ...(twice ? ["Host: other"] : []), json, ...(authorized ? [bearer] : [])];
        // Served as if the Host were fine (the daemon does not depend on it); two may be a 400.
        const status = authorized ? 200 : 401;
        return done(post(list, headers, "{}"), twice ? [status, 400] : [status]);
      }
      case "http/1.0": {
        const authorized = rng.chance(0.5);
        what.push(authorized ? "with credential" : "without");
        const extra = rng.pick([[], ["Connection: keep-alive"], ["Connection: close"]]);
        return done(post(list, [json, ...extra, ...(authorized ? [bearer] : [])], "{}", "1.0"), authorized ? [200] : [401]);
      }
      case "garbage line": {
        const line = rng.pick([
          () => Buffer.concat([rng.bytes(rng.range(1, 200)), Buffer.from("\r\n\r\n")]),
          () => Buffer.from("GET\r\n\r\n"),
          () => Buffer.from("\r\n\r\n"),
          () => Buffer.from("PRI * HTTP/1.1\r\n\r\n"),
          () => Buffer.from("POST  /x HTTP/1.1\r\nHost: x\r\n\r\n"),
          () => Buffer.from("post /hotplex.v1.SessionService/ListSessions HTTP/1.1\r\nHost: x\r\n\r\n"),
          () => Buffer.from("BREW /pot HTTP/1.1\r\nHost: x\r\n\r\n"),
          () => Buffer.from("GET / HTTP/9.9\r\nHost: x\r\n\r\n"),
          () => Buffer.from("GET / HTTP/1.1 extra\r\nHost: x\r\n\r\n"),
          () => Buffer.from(`POST http://evil.example${list} HTTP/1.1\r\nHost: x\r\n${json}\r\nContent-Length: 2\r\n\r\n{}`),
          () => Buffer.from("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n"),
          () => Buffer.from(`POST ${list}\u0000 HTTP/1.1\r\nHost: x\r\n\r\n`, "latin1"),
          () => Buffer.from(`POST /${"a".repeat(20_000)} HTTP/1.1\r\nHost: x\r\n\r\n`),
          () => Buffer.from(`GET ${list}?connect=v1&encoding=json&message=%7B%7D HTTP/1.1\r\nHost: x\r\n${bearer}\r\n\r\n`),
          () => Buffer.from("\u0016\u0003\u0001\u0000\u00a5\u0001\u0000\u0000\u00a1\u0003\u0003", "latin1"), // a TLS ClientHello start
          () => Buffer.from("SSH-2.0-OpenSSH_9.6\r\n"),
        ]);
        return done(line());
      }
      case "broken headers": {
        const make = rng.pick([
          () => post(list, ["Host: x", json, "Content-Length: -1"], "{}", "1.1", false),
          () => post(list, ["Host: x", json, "Content-Length: 1, 2"], "{}", "1.1", false),
          () => post(list, ["Host: x", json, "Content-Length: 2", "Content-Length: 3"], "{}", "1.1", false),
          () => post(list, ["Host: x", json, "Content-Length: 99999999999999999999"], "{}", "1.1", false),
          () => post(list, ["Host: x", json, "Content-Length: abc"], "{}", "1.1", false),
          () => post(list, ["Host: x", json, "Transfer-Encoding: chunked", "Content-Length: 5"], "2\r\n{}\r\n0\r\n\r\n", "1.1", false),
          () => post(list, ["Host: x", json, bearer, "Transfer-Encoding: chunked"], "zz\r\n{}\r\n0\r\n\r\n", "1.1", false),
          () => post(list, ["Host: x", json, bearer, "Transfer-Encoding: chunked"], "2\r\n{}\r\n0\r\n\r\n", "1.1", false),
          () => post(list, ["Host: x", json, bearer, "Transfer-Encoding: gzip, chunked"], "2\r\n{}\r\n0\r\n\r\n", "1.1", false),
          () => post(list, ["Host: x", json, "Transfer-Encoding: chunked", "Transfer-Encoding: identity"], "2\r\n{}\r\n0\r\n\r\n", "1.1", false),
          () => post(list, ["Host: x", "NoColonHere", json], "{}"),
          () => post(list, ["Host: x", "X-Nul: a\u0000b", json], "{}"),
          () => post(list, ["Host: x", "X-Fold: a", " folded", json], "{}"),
          () => post(list, ["Host: x", `X-Big: ${"b".repeat(20_000)}`, json], "{}"),
          () => post(list, ["Host: x", ...Array.from({ length: 3000 }, (_, i) => `X-H${i}: v`), json], "{}"),
          () => post(list, ["Host: x", `${bearer}\u0000`, json], "{}"),
          () => post(list, ["Host: x", "Authorization: Bearer \u00ff\u00fe", json], "{}"),
          () => post(list, ["Host: x", "Content-Type: application/json\u0000", bearer], "{}"),
          () => post(list, ["Host: x", json, bearer, "Upgrade: h2c", "Connection: Upgrade, HTTP2-Settings", "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA"], "{}"),
          () => post(list, ["Host: x", json, bearer, "Expect: 100-continue"], "{}"),
          () => post(list, ["Host: x", json, bearer, "Connection: close, close, keep-alive, upgrade"], "{}"),
          () => Buffer.concat([post(list, ["Host: x", json, bearer], "{}"), post(list, ["Host: x", json], "{}"), Buffer.from("garbage\r\n\r\n")]),
          () => post(list, ["Host: x", json, bearer], "{}").subarray(0, 30),
        ]);
        return done(make());
      }
      case "h2 preface": {
        const preface = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        const settings = Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]);
        const variant = rng.pick(["partial", "garbage after", "bad settings", "bad headers", "data on stream 0", "zero window update", "huge frame", "goaway"]);
        what.push(variant);
        switch (variant) {
          case "partial":
            return done(preface.subarray(0, rng.range(1, preface.length - 1)));
          case "garbage after": {
            // The first frame after the preface must be SETTINGS (type 4); never that here.
            const garbage = rng.bytes(rng.range(9, 64));
            if (garbage[3] === 4) garbage[3] = 5;
            return done(Buffer.concat([preface, garbage]));
          }
          case "bad settings":
            return done(Buffer.concat([preface, Buffer.from([0, 0, 7, 4, 0, 0, 0, 0, 0]), rng.bytes(7)]));
          case "bad headers":
            return done(Buffer.concat([preface, settings, Buffer.from([0, 0, 8, 1, 5, 0, 0, 0, 1]), rng.bytes(8)]));
          case "data on stream 0":
            return done(Buffer.concat([preface, settings, Buffer.from([0, 0, 2, 0, 1, 0, 0, 0, 0, 0x7b, 0x7d])]));
          case "zero window update":
            return done(Buffer.concat([preface, settings, Buffer.from([0, 0, 4, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0])]));
          case "huge frame":
            return done(Buffer.concat([preface, settings, Buffer.from([0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 1]), rng.bytes(32)]));
          default:
            return done(Buffer.concat([preface, settings, Buffer.from([0, 0, 8, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2])]));
        }
      }
      case "body": {
        // A valid request whose body is short of its Content-Length: the request deadline closes it.
        const short = rng.chance(0.5);
        what.push(short ? "body shorter than Content-Length" : "body longer than Content-Length");
        const head = `POST ${list} HTTP/1.1\r\nHost: x\r\n${json}\r\n${bearer}\r\nContent-Length: ${short ? 100 : 2}\r\n\r\n`;
        // The bytes beyond it are a second, malformed request: Node's parser may answer that
        // one's 400 in place of the first one's 200.
        return done(Buffer.from(head + (short ? "{" : `{}${"x".repeat(rng.range(1, 50))}`)), short ? undefined : [200, 400]);
      }
    }
  }
}

// Whether connect-es accepts a deadline header value (at most a day, the daemon's maximum).
function acceptedDeadline(value: string, unit: "connect" | "grpc"): boolean {
  const day = 24 * 60 * 60 * 1000;
  if (unit === "connect") return /^\d{1,10}$/.test(value) && Number(value) <= day;
  const match = /^(\d{1,8})([HMSmun])$/.exec(value);
  if (!match) return false;
  const factor = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 }[match[2] as "H"];
  return Number(match[1]) * factor <= day;
}

function methodName(t: Target): string {
  return `${t.service.name}/${t.method.name}`;
}

/** A length-prefixed envelope; `length` overrides the announced length. */
export function envelope(flags: number, payload: Buffer, length = payload.length): Buffer {
  const head = Buffer.alloc(5);
  head[0] = flags;
  head.writeUInt32BE(length >>> 0, 1);
  return Buffer.concat([head, payload]);
}

function varint(value: bigint): number[] {
  const out: number[] = [];
  let v = value;
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) byte |= 0x80;
    out.push(byte);
  } while (v > 0n);
  return out;
}

// Sets a key of a JSON object's text to a value given as JSON text (replacing the key if present).
function setJsonKey(objectText: string, key: string, valueText: string): string {
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(objectText) as Record<string, unknown>;
  } catch {
    parsed = {};
  }
  const others = Object.entries(parsed)
    .filter(([k]) => k !== key)
    .map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`);
  return `{${[...others, `${JSON.stringify(key)}:${valueText}`].join(",")}}`;
}

function randomJson(rng: Rng, depth: number, keys: string[]): unknown {
  const kind = rng.int(depth > 0 ? 8 : 5);
  switch (kind) {
    case 0:
      return null;
    case 1:
      return rng.chance(0.5);
    case 2:
      return rng.pick([0, -1, 1.5, 2 ** 53, -(2 ** 63), 1e308, 4294967296]);
    case 3:
      return rng.pick(WEIRD_STRINGS);
    case 4:
      return rng.pick(["fz-0", "18446744073709551615", ""]);
    case 5:
    case 6: {
      const object: Record<string, unknown> = {};
      for (let n = rng.int(4); n > 0; n -= 1) object[keys.length > 0 && rng.chance(0.7) ? rng.pick(keys) : rng.pick(["a", "", "é", "0"])] = randomJson(rng, depth - 1, keys);
      return object;
    }
    default:
      return Array.from({ length: rng.int(4) }, () => randomJson(rng, depth - 1, keys));
  }
}

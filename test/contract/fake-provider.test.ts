// The fast level: the whole API over connect-es's router transport (no sockets) on an
// engine whose provider is in memory (no child processes). Runs the provider contract
// and what the API says about providers.
import { type Client, Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SessionService } from "../../gen/hotplex/v1/session_service_pb.js";
import { engineConfig } from "../../src/engine/config.js";
import { Engine } from "../../src/engine/engine.js";
import { DEFAULT_SANDBOX } from "../../src/engine/config.js";
import { createPrincipal } from "../../src/security/principal.js";
import { principalKey } from "../../src/server/context.js";
import { createErrorInterceptor } from "../../src/server/interceptors.js";
import { routes } from "../../src/server/routes/index.js";
import { capabilities } from "../../src/providers/provider.js";
import { type FakeConversations, FakeProvider } from "../fixtures/fake-provider.js";
import { collect, providerContract, text } from "./contract.js";

let scratch: string;
let engine: Engine;
let client: Client<typeof SessionService>;
let fake: FakeProvider;
const conversations: FakeConversations = new Map();

async function open(): Promise<void> {
  fake = new FakeProvider("fake", conversations);
  const second = new FakeProvider("fake-two", new Map(), ["OTHER_AGENT_*"]);
  Object.assign(second.capabilities, capabilities({}));
  engine = await Engine.open(
    engineConfig(
      {
        workRoot: path.join(scratch, "work"),
        stateRoot: path.join(scratch, "state"),
        store: { kind: "sqlite", dataDir: path.join(scratch, "data"), durability: "normal" },
        agentEnv: { PATH: "/usr/bin:/bin", FAKE_AGENT_KEY: "mine", OTHER_AGENT_KEY: "theirs" },
      },
      { sandbox: { ...DEFAULT_SANDBOX, mode: "off" }, limits: { stopGraceMs: 500, turnTimeoutMs: 20_000 } },
    ),
    pino({ level: "silent" }),
    [fake, second],
  );
  const principal = createPrincipal("test", "default", ["client"]);
  const transport = createRouterTransport(routes(engine, { version: "test", maxRequestBytes: 1 << 22, maxConnections: 1 }), {
    router: {
      interceptors: [
        (next) => (req) => {
          req.contextValues.set(principalKey, principal);
          return next(req);
        },
        createErrorInterceptor(),
      ],
    },
  });
  client = createClient(SessionService, transport);
}

beforeAll(async () => {
  scratch = mkdtempSync(path.join(tmpdir(), "hotplex-fake-provider-"));
  await open();
});

afterAll(async () => {
  await engine.shutdown();
  rmSync(scratch, { recursive: true, force: true });
});

describe("provider contract: in-memory fake over the router transport", () => {
  providerContract(() => ({
    provider: "fake",
    client: () => client,
    restart: async () => {
      await engine.shutdown();
      await open();
    },
    plain: (word) => `say ${word}`,
    recall: () => "[[recall]]",
    hang: () => "[[hang]]",
  }));
});

describe("providers through the API", () => {
  it("lists the enabled providers with their versions and capabilities, the default first", async () => {
    const { providers } = await client.listProviders({});
    expect(providers.map((p) => [p.name, p.version, p.isDefault])).toEqual([
      ["fake", "1.0.0 (fake)", true],
      ["fake-two", "1.0.0 (fake)", false],
    ]);
    expect(providers[0]?.capabilities).toMatchObject({ interrupt: true, resume: true, approvals: true, fork: true });
    expect(providers[1]?.capabilities?.interrupt).toBe(false);
  });

  it("gives a config without a provider the default one, and stores the name in the config", async () => {
    await collect(client.execute({ sessionId: "default-provider", prompt: "hi" }));
    const { session } = await client.getSnapshot({ sessionId: "default-provider" });
    expect(session?.provider).toBe("fake");
    expect(session?.config?.provider).toBe("fake");
    // Naming the default explicitly is the same config: no reconfiguration, no refusal.
    const again = await collect(client.execute({ sessionId: "default-provider", prompt: "again", config: { provider: "fake" } }));
    expect(text(again)).toContain("again");
  });

  it("runs a session on the provider its config names, and shows that provider's capabilities", async () => {
    await collect(client.execute({ sessionId: "second-provider", prompt: "hi", config: { provider: "fake-two" } }));
    const { session } = await client.getSnapshot({ sessionId: "second-provider" });
    expect(session?.provider).toBe("fake-two");
    expect(session?.capabilities?.interrupt).toBe(false);
    const changed = await collect(client.execute({ sessionId: "second-provider", prompt: "x", config: { provider: "fake" } })).catch((e: unknown) =>
      ConnectError.from(e),
    );
    expect((changed as ConnectError).code).toBe(Code.FailedPrecondition);
    expect((changed as ConnectError).rawMessage).toMatch(/runs provider fake-two; a session's provider cannot change/);
  });

  it("refuses to interrupt on a provider that cannot, naming it; and a hostile turn id", async () => {
    await collect(client.execute({ sessionId: "no-interrupt", prompt: "hi", config: { provider: "fake-two" } }));
    const error = await client.interrupt({ sessionId: "no-interrupt" }).catch((e: unknown) => ConnectError.from(e));
    expect((error as ConnectError).code).toBe(Code.FailedPrecondition);
    expect((error as ConnectError).rawMessage).toMatch(/provider fake-two cannot interrupt a turn/);
    const long = await client.interrupt({ sessionId: "no-interrupt", turnId: "t".repeat(10_000) }).catch((e: unknown) => ConnectError.from(e));
    expect((long as ConnectError).code).toBe(Code.InvalidArgument);
  });

  it("answers hostile values of the new fields with INVALID_ARGUMENT or NOT_FOUND, never a crash", async () => {
    const codeOf = (p: Promise<unknown>) => p.then(() => "ok", (e: unknown) => Code[ConnectError.from(e).code]);
    // A flag-like or control-character provider name is just an unknown name; the message quotes it safely.
    for (const provider of ["--settings={}", "-x", "fake\u0000", " fake", "FAKE"]) {
      expect(await codeOf(collect(client.execute({ sessionId: "hostile-provider", prompt: "x", config: { provider } })))).toBe("InvalidArgument");
    }
    expect(await codeOf(client.interrupt({ sessionId: "" }))).toBe("InvalidArgument");
    expect(await codeOf(client.interrupt({ sessionId: "--x=1" }))).toBe("InvalidArgument");
    expect(await codeOf(client.interrupt({ sessionId: "never-created" }))).toBe("NotFound");
    // The session the refused calls named was never created.
    expect(await codeOf(client.getSnapshot({ sessionId: "hostile-provider" }))).toBe("NotFound");
  });

  it("hands an agent its own provider's variables and none of another's", async () => {
    await collect(client.execute({ sessionId: "env", prompt: "hi" }));
    const env = fake.runs.at(-1)?.env;
    expect(env).toMatchObject({ PATH: "/usr/bin:/bin", FAKE_AGENT_KEY: "mine" });
    expect(env).not.toHaveProperty("OTHER_AGENT_KEY");
  });

  it("rejects a hostile provider name without echoing it whole", async () => {
    const name = `--${"x".repeat(5000)}`;
    const error = await collect(client.execute({ sessionId: "hostile", prompt: "x", config: { provider: name } })).catch((e: unknown) => ConnectError.from(e));
    expect((error as ConnectError).code).toBe(Code.InvalidArgument);
    expect((error as ConnectError).rawMessage.length).toBeLessThan(400);
  });
});

// An ACP agent the operator names in the server config runs through the generic ACP
// provider: here the scripted ACP fake, as a real child process in the sandbox.
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TurnOutcome } from "../../gen/hotplex/v1/event_pb.js";
import { executeEvents, fakeClaudePath, repoRoot, startTestDaemon, type TestDaemon, textOf, turnEndOf } from "../harness.js";

const fakeAcpPath = path.join(repoRoot, "test", "fixtures", "fake-acp-agent.mjs");

describe("an operator's ACP agent", () => {
  let daemon: TestDaemon;
  beforeAll(async () => {
    daemon = await startTestDaemon({
      providers: {
        enabled: ["claude-code"],
        executables: { "claude-code": fakeClaudePath },
        defaultProvider: "claude-code",
        acpAgents: { "scripted-acp": [fakeAcpPath] },
      },
    });
  });
  afterAll(async () => {
    await daemon.close();
  });

  it("is enabled under its name and runs turns over ACP, warm", async () => {
    const { providers } = await daemon.client.listProviders({});
    expect(providers.map((p) => p.name)).toEqual(["claude-code", "scripted-acp"]);
    expect(providers[1]?.capabilities).toMatchObject({ interrupt: true, resume: true, fork: false });
    const first = await executeEvents(daemon.client.execute({ sessionId: "acp", prompt: "hello", config: { provider: "scripted-acp" } }));
    expect(turnEndOf(first).outcome).toBe(TurnOutcome.COMPLETED);
    expect(textOf(first)).toBe("ok: hello");
    const second = await executeEvents(daemon.client.execute({ sessionId: "acp", prompt: "again" }));
    expect(second.some((e) => e.payload.case === "sessionStarted")).toBe(false);
    expect(textOf(second)).toBe("ok: again");
    const { session } = await daemon.client.getSnapshot({ sessionId: "acp" });
    expect(session?.provider).toBe("scripted-acp");
  });
});

// The Codex connection against a scripted app-server (a real child process speaking the
// app-server's JSON-RPC, sandbox off): approvals and questions answered exactly once,
// withdrawn ones reported, everything else refused at once, steer, per-turn settings,
// the model list and fork. The real app-server is in test/e2e/codex-interactive.test.ts.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DEFAULT_SANDBOX } from "../../engine/config.js";
import { TurnOutcome } from "../../events/event.js";
import { AgentLauncher } from "../../process/launcher.js";
import { Sandbox } from "../../process/sandbox.js";
import type { AgentConnection } from "../connection.js";
import type { AgentStart, LaunchConfig, ParsedOutput } from "../provider.js";
import { CodexProvider } from "./provider.js";

const CONFIG: LaunchConfig = { model: "", permissionMode: "", allowedTools: [], disallowedTools: [], systemPrompt: "", appendSystemPrompt: "", approvals: true, gateToolCalls: false };
const launcher = new AgentLauncher(Sandbox.open({ ...DEFAULT_SANDBOX, mode: "off", memoryBytes: 0, processes: 0, openFiles: 0 }, pino({ level: "silent" })));

// The provider runs `<executable> app-server --config=…`: with node as the executable, node
// runs the file `app-server` in the work dir (the agent's cwd), this script. What it got
// comes back as the turn's message (TurnEnded.result).
const FAKE_APP_SERVER = String.raw`
const rl = require("readline").createInterface({ input: process.stdin });
const send = (m) => process.stdout.write(JSON.stringify(m) + "\n");
const waiting = new Map();
let turn = 0, current = "", thread = "thread-1", steered = [], forkParams = null;
const note = (method, params) => send({ method, params: { threadId: thread, ...params } });
const finish = (text, status = "completed") => {
  note("item/completed", { item: { type: "agentMessage", id: "m" + turn, text } });
  note("turn/completed", { turn: { id: current, status } });
  current = "";
};
const ask = (id, method, params) => new Promise((resolve) => { waiting.set(id, resolve); send({ id, method, params }); });
rl.on("line", async (line) => {
  const m = JSON.parse(line);
  if (m.method === undefined) { const w = waiting.get(m.id); waiting.delete(m.id); return w && w(m); }
  const p = m.params || {};
  switch (m.method) {
    case "initialize": return send({ id: m.id, result: {} });
    case "thread/start": return send({ id: m.id, result: { thread: { id: thread } } });
    case "thread/fork":
      if (p.threadId === "missing") return send({ id: m.id, error: { code: -32600, message: "no rollout found for thread id missing" } });
      thread = "fork-of-" + p.threadId; forkParams = { threadId: p.threadId, lastTurnId: p.lastTurnId }; return send({ id: m.id, result: { thread: { id: thread } } });
    case "model/list":
      return send({ id: m.id, result: p.cursor ? { data: [{ model: "m2", displayName: "M2" }], nextCursor: null } : { data: [{ model: "m1", displayName: "M1", description: "first" }], nextCursor: "c2" } });
    case "turn/interrupt": send({ id: m.id, result: {} }); return finish("interrupted", "interrupted");
    case "turn/steer":
      if (p.expectedTurnId !== current) return send({ id: m.id, error: { code: -32600, message: "expected active turn id " + p.expectedTurnId + " but found " + current } });
      steered.push(p.input[0].text);
      send({ id: m.id, result: { turnId: current } });
      return p.input[0].text === "finish" ? finish(JSON.stringify(steered)) : undefined;
    case "turn/start": {
      current = "turn-" + ++turn;
      send({ id: m.id, result: { turn: { id: current, status: "inProgress" } } });
      note("turn/started", { turn: { id: current } });
      const text = p.input[0].text;
      if (text === "settings") return finish(JSON.stringify({ model: p.model ?? null, approvalPolicy: p.approvalPolicy ?? null }));
      if (text === "ask") {
        note("item/started", { item: { type: "commandExecution", id: "call_1", command: "touch x", cwd: "/w" } });
        const answer = await ask(0, "item/commandExecution/requestApproval", { threadId: thread, turnId: current, itemId: "call_1", command: "touch x", cwd: "/w" });
        note("serverRequest/resolved", { requestId: 0 });
        return finish(JSON.stringify(answer.result));
      }
      if (text === "patch") {
        note("item/started", { item: { type: "fileChange", id: "call_2", changes: [{ path: "/w/p.txt", kind: { type: "add" } }] } });
        const answer = await ask(1, "item/fileChange/requestApproval", { threadId: thread, turnId: current, itemId: "call_2" });
        return finish(JSON.stringify(answer.result));
      }
      if (text === "question") {
        const answer = await ask("q", "item/tool/requestUserInput", { threadId: thread, turnId: current, itemId: "call_3", questions: [{ id: "color", header: "Color", question: "Which?", options: [{ label: "red", description: "" }] }] });
        return finish(JSON.stringify(answer.result));
      }
      if (text === "others") {
        const answers = [];
        for (const [id, method, params] of [[10, "item/tool/call", {}], [11, "mcpServer/elicitation/request", null], [12, "account/chatgptAuthTokens/refresh", 5]]) answers.push(await ask(id, method, params));
        return finish(JSON.stringify(answers.map((a) => a.error ? "error" : "result")));
      }
      if (text === "withdraw") {
        send({ id: 20, method: "item/commandExecution/requestApproval", params: { threadId: thread, turnId: current, itemId: "call_4", command: "rm x" } });
        note("serverRequest/resolved", { requestId: 20 });
        return;
      }
      if (text === "hold") {
        // Asks and waits; an interrupt ends the turn with the request still open.
        waiting.set(30, (answer) => { note("item/completed", { item: { type: "agentMessage", id: "late", text: "late answer " + JSON.stringify(answer.result) } }); });
        return send({ id: 30, method: "item/commandExecution/requestApproval", params: { threadId: thread, turnId: current, itemId: "call_5", command: "sleep" } });
      }
      if (text === "steer me") return; // ends with the steer "finish"
      if (text === "fork params") return finish(JSON.stringify(forkParams));
      return finish("unknown prompt " + text);
    }
  }
});
`;

describe("the Codex connection with a scripted app-server", () => {
  let scratch: string;
  let outputs: ParsedOutput[];
  let listeners: (() => boolean)[];
  let connection: AgentConnection | undefined;

  beforeEach(() => {
    scratch = mkdtempSync(path.join(tmpdir(), "hotplex-codex-conn-"));
    for (const dir of ["work", "home", "state"]) mkdirSync(path.join(scratch, dir));
    writeFileSync(path.join(scratch, "work", "app-server"), FAKE_APP_SERVER);
    outputs = [];
    listeners = [];
  });
  afterEach(async () => {
    await connection?.close(0);
    connection = undefined;
    rmSync(scratch, { recursive: true, force: true });
  });

  const start = (extra: Partial<AgentStart> = {}): AgentStart => ({
    tenant: "default",
    providerSessionId: "",
    mode: "new",
    config: CONFIG,
    paths: { workDir: path.join(scratch, "work"), home: path.join(scratch, "home"), stateDir: path.join(scratch, "state") },
    daemonPaths: { workRoot: scratch, stateRoot: scratch },
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin" },
    maxLineBytes: 1024 * 1024,
    launcher,
    handlers: {
      onOutput: (item) => {
        outputs.push(item);
        listeners = listeners.filter((listener) => !listener());
      },
      onFault: () => {},
    },
    ...extra,
  });
  const connect = async (extra: Partial<AgentStart> = {}) => (connection = await new CodexProvider(process.execPath).connect(start(extra)));
  // Resolves with the first output (from `from` on) of the type.
  const next = <T extends ParsedOutput["type"]>(type: T, from = outputs.length): Promise<Extract<ParsedOutput, { type: T }>> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${type} in ${JSON.stringify(outputs.slice(from).map((o) => o.type))}`)), 10_000);
      const check = () => {
        const found = outputs.slice(from).find((o) => o.type === type);
        if (!found) return false;
        clearTimeout(timer);
        resolve(found as Extract<ParsedOutput, { type: T }>);
        return true;
      };
      if (!check()) listeners.push(check);
    });
  const turn = async (agent: AgentConnection, prompt: string) => {
    const from = outputs.length;
    agent.prompt(prompt);
    return (await next("turn_end", from)).turnEnded;
  };

  it("puts a command approval to the host and answers it once with the host's decision", async () => {
    const agent = await connect();
    const from = outputs.length;
    agent.prompt("ask");
    const { request } = await next("agent_request", from);
    expect(request).toMatchObject({ requestId: "0", kind: "permission", toolName: "shell", toolUseId: "call_1", command: "touch x", path: "/w", inputJson: '{"command":"touch x","cwd":"/w"}' });
    agent.answer(request.requestId, { behavior: "allow", forSession: true });
    agent.answer(request.requestId, { behavior: "deny", message: "a second answer is dropped" });
    const end = (await next("turn_end", from)).turnEnded;
    expect(JSON.parse(end.result)).toEqual({ decision: "acceptForSession" });
    // Resolved after hotplex answered: not a withdrawal.
    expect(outputs.slice(from).some((o) => o.type === "agent_request_cancelled")).toBe(false);

    const patchFrom = outputs.length;
    agent.prompt("patch");
    const patch = await next("agent_request", patchFrom);
    expect(patch.request).toMatchObject({ toolName: "apply_patch", toolUseId: "call_2", path: "/w/p.txt", inputJson: '{"changes":[{"path":"/w/p.txt","kind":"add"}]}' });
    agent.refuse(patch.request.requestId, "no");
    expect(JSON.parse((await next("turn_end", patchFrom)).turnEnded.result)).toEqual({ decision: "decline" });
  });

  it("puts a question to the host and answers by question id", async () => {
    const agent = await connect();
    const from = outputs.length;
    agent.prompt("question");
    const { request } = await next("agent_request", from);
    expect(request).toMatchObject({ requestId: "q", kind: "question", questions: [{ id: "color", question: "Which?", header: "Color", options: [{ label: "red", description: "" }] }] });
    agent.answer("q", { behavior: "answer", answers: { color: "red" } });
    expect(JSON.parse((await next("turn_end", from)).turnEnded.result)).toEqual({ answers: { color: { answers: ["red"] } } });
  });

  it("hands other requests to be refused, and refuses them with a JSON-RPC error", async () => {
    const agent = await connect();
    const from = outputs.length;
    agent.prompt("others");
    let at = from;
    for (const subtype of ["item/tool/call", "mcpServer/elicitation/request", "account/chatgptAuthTokens/refresh"]) {
      const request = await next("control_request", at);
      at = outputs.indexOf(request) + 1;
      expect(request.subtype).toBe(subtype);
      agent.refuse(request.requestId, "not here");
    }
    expect(JSON.parse((await next("turn_end", from)).turnEnded.result)).toEqual(["error", "error", "error"]);
  });

  it("reports a request the agent withdrew, and withdraws what a turn's end leaves open", async () => {
    const agent = await connect();
    let from = outputs.length;
    agent.prompt("withdraw");
    const withdrawn = await next("agent_request_cancelled", from);
    expect(withdrawn.requestId).toBe("20");
    expect(outputs.slice(from).map((o) => o.type)).toEqual(["turn_start", "agent_request", "agent_request_cancelled"]);
    // Answering it now sends nothing (the agent would take it for another request).
    agent.answer("20", { behavior: "allow", forSession: false });
    agent.interrupt();
    await next("turn_end", from);

    from = outputs.length;
    agent.prompt("hold");
    const held = await next("agent_request", from);
    agent.interrupt();
    const end = await next("turn_end", from);
    expect(end.turnEnded.outcome).toBe(TurnOutcome.INTERRUPTED);
    const types = outputs.slice(from).map((o) => o.type);
    // Withdrawn before the turn ends, so the session never waits on it.
    expect(types.indexOf("agent_request_cancelled")).toBeLessThan(types.indexOf("turn_end"));
    expect(outputs.slice(from).find((o) => o.type === "agent_request_cancelled")).toEqual({ type: "agent_request_cancelled", requestId: held.request.requestId });
  });

  it("steers the running turn by its id, and rejects a steer without one", async () => {
    const agent = await connect();
    await expect(agent.steer?.("too early")).rejects.toThrow(/no turn is running/);
    const from = outputs.length;
    agent.prompt("steer me");
    // Right after the prompt, before the agent named the turn: it waits for the id.
    await agent.steer?.("first");
    await next("turn_start", from);
    await agent.steer?.("second");
    await agent.steer?.("finish");
    const end = (await next("turn_end", from)).turnEnded;
    expect(JSON.parse(end.result)).toEqual(["first", "second", "finish"]);
    await expect(agent.steer?.("after the end")).rejects.toThrow(/no turn is running/);
  });

  it("takes a model for the next turn only, refuses permission modes, and lists models page by page", async () => {
    const agent = await connect();
    await agent.applySettings?.({ model: "gpt-next" });
    await expect(agent.applySettings?.({ permissionMode: "plan" })).rejects.toThrow(/no permission modes/);
    await expect(agent.applySettings?.({ model: "" })).rejects.toThrow(/default model/);
    expect(JSON.parse((await turn(agent, "settings")).result)).toEqual({ model: "gpt-next", approvalPolicy: null });
    // Codex keeps a turn's model for the later turns itself: sent once.
    expect(JSON.parse((await turn(agent, "settings")).result)).toEqual({ model: null, approvalPolicy: null });
    expect(await agent.listModels?.()).toEqual([
      { id: "m1", displayName: "M1", description: "first" },
      { id: "m2", displayName: "M2", description: "" },
    ]);
  });

  it("forks the named thread, up to a turn, and runs on the new thread", async () => {
    const agent = await connect({ mode: "fork", forkFrom: "parent-thread", forkAt: "turn-7", providerSessionId: "" });
    const from = outputs.length;
    agent.prompt("fork params");
    expect(await next("turn_start", from)).toEqual({ type: "turn_start", providerSessionId: "fork-of-parent-thread", model: "" });
    const end = (await next("turn_end", from)).turnEnded;
    expect(JSON.parse(end.result)).toEqual({ threadId: "parent-thread", lastTurnId: "turn-7" });
    expect(end.providerTurnRef).toBe("turn-1");
  });

  it("fails a fork of a thread that is not there, never as a conversation to start anew", async () => {
    const provider = new CodexProvider(process.execPath);
    connection = await provider.connect(start({ mode: "fork", forkFrom: "missing" }));
    const fatal = await next("fatal_startup", 0);
    expect(fatal.message).toBe('cannot fork the thread "missing": no rollout found for thread id missing');
    expect(provider.classifyStartupFailure("", fatal.message)).toBeUndefined();
  });
});

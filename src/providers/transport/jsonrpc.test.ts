import { describe, expect, it } from "vitest";
import { JsonRpcError, type JsonRpcId, JsonRpcPeer } from "./jsonrpc.js";

function peer(options = { versionField: true }) {
  const written: Record<string, unknown>[] = [];
  const seen: { notifications: [string, unknown][]; requests: [JsonRpcId, string][]; invalid: [string, string][] } = {
    notifications: [],
    requests: [],
    invalid: [],
  };
  const p = new JsonRpcPeer(
    (line) => {
      written.push(JSON.parse(line) as Record<string, unknown>);
      return true;
    },
    {
      onNotification: (method, params) => seen.notifications.push([method, params]),
      onRequest: (id, method) => seen.requests.push([id, method]),
      onInvalid: (line, reason) => seen.invalid.push([line, reason]),
    },
    options,
  );
  return { p, written, seen };
}

describe("JsonRpcPeer", () => {
  it("matches answers to requests by id, in any order", async () => {
    const { p, written } = peer();
    const a = p.request("a", { x: 1 });
    const b = p.request("b", {});
    expect(written).toEqual([
      { jsonrpc: "2.0", id: 1, method: "a", params: { x: 1 } },
      { jsonrpc: "2.0", id: 2, method: "b", params: {} },
    ]);
    p.handleLine(JSON.stringify({ id: 2, result: "B" }));
    p.handleLine(JSON.stringify({ id: 1, error: { code: -32600, message: "no" } }));
    await expect(b).resolves.toBe("B");
    await expect(a).rejects.toEqual(new JsonRpcError(-32600, "no"));
    expect(p.pendingRequests).toBe(0);
  });

  it("hands on the agent's requests and notifications, and answers by its id", () => {
    const { p, written, seen } = peer({ versionField: false });
    p.handleLine(JSON.stringify({ id: "r-1", method: "ask", params: {} }));
    p.handleLine(JSON.stringify({ method: "note", params: { n: 1 } }));
    expect(seen.requests).toEqual([["r-1", "ask"]]);
    expect(seen.notifications).toEqual([["note", { n: 1 }]]);
    p.respondError("r-1", -32601, "not handled");
    expect(written).toEqual([{ id: "r-1", error: { code: -32601, message: "not handled" } }]);
  });

  it("reports hostile lines instead of throwing: not JSON, not objects, unknown or bad ids, answers nobody asked for", () => {
    const { p, seen } = peer();
    for (const line of ["{", "[1,2]", "42", "null", '{"id":{"x":1},"method":"m"}', '{"id":99,"result":1}', '{"id":1}', '"str"']) p.handleLine(line);
    expect(seen.invalid.map(([, reason]) => reason)).toEqual([
      "not_json",
      "not_an_object",
      "not_an_object",
      "not_an_object",
      "bad_id",
      "unknown_response_id",
      "not_jsonrpc",
      "not_an_object",
    ]);
  });

  it("bounds an agent's error message and takes a malformed error object", async () => {
    const { p } = peer();
    const a = p.request("a", {});
    p.handleLine(JSON.stringify({ id: 1, error: { code: "x", message: "m".repeat(10_000) } }));
    const error = (await a.catch((e: unknown) => e)) as JsonRpcError;
    expect(error.code).toBe(-32603);
    expect(error.message.length).toBe(4096);
    const b = p.request("b", {});
    p.handleLine(JSON.stringify({ id: 2, error: "boom" }));
    await expect(b).rejects.toBeInstanceOf(JsonRpcError);
  });

  it("fails pending and later requests once closed", async () => {
    const { p } = peer();
    const a = p.request("a", {});
    p.close("the agent exited");
    await expect(a).rejects.toThrow("a: the agent exited");
    await expect(p.request("b", {})).rejects.toThrow("the agent exited");
  });
});

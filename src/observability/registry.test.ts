import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { BoundedLabel, codeName } from "./registry.js";
import { otlpTracesUrl } from "./trace-exporter.js";

describe("BoundedLabel", () => {
  it("passes the first distinct values and folds every later one into other", () => {
    const label = new BoundedLabel(2);
    expect([label.value("a"), label.value("b"), label.value("c"), label.value("a")]).toEqual(["a", "b", "other", "a"]);
    expect(label.value("x".repeat(129))).toBe("other");
    expect(label.value("")).toBe("other");
  });
});

describe("codeName", () => {
  it("spells codes as the Connect protocol does", () => {
    expect(codeName(Code.NotFound)).toBe("not_found");
    expect(codeName(Code.InvalidArgument)).toBe("invalid_argument");
    expect(codeName(undefined)).toBe("ok");
  });
});

describe("otlpTracesUrl", () => {
  it("appends the traces path to a bare collector address and keeps a full URL", () => {
    expect(otlpTracesUrl("http://127.0.0.1:4318")).toBe("http://127.0.0.1:4318/v1/traces");
    expect(otlpTracesUrl("https://otel.example/custom/path")).toBe("https://otel.example/custom/path");
    expect(() => otlpTracesUrl("ftp://x")).toThrow(/http or https/);
    expect(() => otlpTracesUrl("not a url")).toThrow(/not a URL/);
  });
});

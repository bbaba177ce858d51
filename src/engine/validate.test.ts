import { create } from "@bufbuild/protobuf";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { SessionConfigSchema } from "../../gen/hotplex/v1/session_pb.js";
import type { SessionConfig } from "../../gen/hotplex/v1/session_pb.js";
import { HotplexError } from "../errors.js";
import { validateConfig, validatePrompt, validateRequestId, validateSessionId } from "./validate.js";

/** Asserts `fn` throws an invalid_argument HotplexError whose message names `field`. */
function expectInvalid(fn: () => void, field: string): void {
  let thrown: unknown;
  try {
    fn();
  } catch (error) {
    thrown = error;
  }
  expect(thrown).toBeInstanceOf(HotplexError);
  expect((thrown as HotplexError).code).toBe("invalid_argument");
  expect((thrown as HotplexError).message).toContain(field);
}

const config = (init: MessageInitShape<typeof SessionConfigSchema> = {}): SessionConfig => create(SessionConfigSchema, init);

describe("validateSessionId", () => {
  it.each(["a", "session-1", "A.b_c:d-e", "..x", "x..", ".hidden", "0", "x".repeat(128), "550e8400-e29b-41d4-a716-446655440000"])(
    "accepts %j",
    (id) => {
      expect(() => validateSessionId(id)).not.toThrow();
    },
  );

  it.each([
    ["empty", ""],
    ["129 characters", "x".repeat(129)],
    ["'.'", "."],
    ["'..'", ".."],
    ["a slash", "a/b"],
    ["a backslash", "a\\b"],
    ["a space", "a b"],
    ["a NUL", "a\u0000b"],
    ["a newline", "a\nb"],
    ["unicode letters", "sessión"],
    ["an emoji", "😀"],
    ["a trailing newline", "abc\n"],
  ])("rejects an id with %s", (_what, id) => {
    expectInvalid(() => validateSessionId(id), "session_id");
  });

  it("shows at most 140 characters of a long id in the message", () => {
    let message = "";
    try {
      validateSessionId("y".repeat(10_000));
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toContain("y".repeat(140));
    expect(message).not.toContain("y".repeat(141));
  });
});

describe("validatePrompt", () => {
  it("accepts a normal prompt and one of exactly 1 MiB", () => {
    expect(() => validatePrompt("hello")).not.toThrow();
    expect(() => validatePrompt("x".repeat(1024 * 1024))).not.toThrow();
  });

  it.each([
    ["empty", ""],
    ["only whitespace", " \t\n\r "],
  ])("rejects a prompt that is %s", (_what, prompt) => {
    expectInvalid(() => validatePrompt(prompt), "prompt");
  });

  it("rejects a prompt over 1 MiB, counted in UTF-8 bytes", () => {
    expectInvalid(() => validatePrompt("x".repeat(1024 * 1024 + 1)), "prompt");
    // 349526 three-byte characters: fewer than 1 Mi characters but more than 1 MiB
    expectInvalid(() => validatePrompt("€".repeat(349_526)), "prompt");
  });
});

describe("validateRequestId", () => {
  it("accepts an empty request id and one of 128 characters", () => {
    expect(() => validateRequestId("")).not.toThrow();
    expect(() => validateRequestId("r".repeat(128))).not.toThrow();
  });

  it("rejects a request id of 129 characters", () => {
    expectInvalid(() => validateRequestId("r".repeat(129)), "request_id");
  });
});

describe("validateConfig", () => {
  it("accepts an empty config and a full valid one", () => {
    expect(() => validateConfig(config())).not.toThrow();
    expect(() =>
      validateConfig(
        config({
          workDir: "project",
          model: "claude-sonnet-4-5[1m]",
          permissionMode: "acceptEdits",
          allowedTools: ["Bash(git log:*)", "Read"],
          disallowedTools: ["WebFetch"],
          systemPrompt: "Be brief.\nReally.",
          appendSystemPrompt: "Tabs\tare fine here.",
        }),
      ),
    ).not.toThrow();
  });

  it.each([
    ["a newline", "claude\nopus"],
    ["a tab", "claude\topus"],
    ["a NUL", "claude\u0000"],
    ["an escape", "\u001b[31mred"],
    ["a DEL", "claude\u007f"],
  ])("rejects a model with %s", (_what, model) => {
    expectInvalid(() => validateConfig(config({ model })), "config.model");
  });

  it("accepts a model of 256 characters and rejects one of 257", () => {
    expect(() => validateConfig(config({ model: "m".repeat(256) }))).not.toThrow();
    expectInvalid(() => validateConfig(config({ model: "m".repeat(257) })), "config.model");
  });

  it.each(["claude-opus-4-8[1m]", "sonnet", "us.anthropic.claude-x-v1:0", "arn:aws:bedrock:us-east-1:1:inference-profile/x"])(
    "accepts the model name %j",
    (model) => {
      expect(() => validateConfig(config({ model }))).not.toThrow();
    },
  );

  it.each(["--settings={}", "-x", " sonnet", "son net", 'a"b'])("rejects the model %j, which is no model name", (model) => {
    expectInvalid(() => validateConfig(config({ model })), "config.model");
  });

  it("rejects a tool rule that starts like a flag, and more than 256 rules", () => {
    expectInvalid(() => validateConfig(config({ allowedTools: ["--settings={}"] })), "config.allowed_tools[0]");
    expectInvalid(() => validateConfig(config({ disallowedTools: ["Read", "-p"] })), "config.disallowed_tools[1]");
    expect(() => validateConfig(config({ allowedTools: Array(256).fill("Read") }))).not.toThrow();
    expectInvalid(() => validateConfig(config({ allowedTools: Array(257).fill("Read") })), "config.allowed_tools");
  });

  it("rejects control characters and empty entries in tool rules, naming the list and the index", () => {
    expectInvalid(() => validateConfig(config({ allowedTools: ["Read", "Bash(rm\n-rf)"] })), "config.allowed_tools[1]");
    expectInvalid(() => validateConfig(config({ disallowedTools: ["Web\u0000Fetch"] })), "config.disallowed_tools[0]");
    expectInvalid(() => validateConfig(config({ allowedTools: [""] })), "config.allowed_tools[0]");
    expectInvalid(() => validateConfig(config({ disallowedTools: ["x".repeat(513)] })), "config.disallowed_tools[0]");
  });

  it("rejects a NUL character in the system prompts", () => {
    expectInvalid(() => validateConfig(config({ systemPrompt: "be\u0000nice" })), "config.system_prompt");
    expectInvalid(() => validateConfig(config({ appendSystemPrompt: "\u0000" })), "config.append_system_prompt");
  });

  it("rejects system prompts over 1 MiB", () => {
    expect(() => validateConfig(config({ systemPrompt: "s".repeat(1024 * 1024) }))).not.toThrow();
    expectInvalid(() => validateConfig(config({ systemPrompt: "s".repeat(1024 * 1024 + 1) })), "config.system_prompt");
    expectInvalid(() => validateConfig(config({ appendSystemPrompt: "s".repeat(1024 * 1024 + 1) })), "config.append_system_prompt");
  });
});

import { describe, expect, it } from "vitest";
import { agentEnvironment, DEFAULT_AGENT_ENV_ALLOW, environmentFor } from "./env.js";

describe("agentEnvironment", () => {
  it("passes exactly the allowed names and names under an allowed prefix", () => {
    const env = agentEnvironment(
      { PATH: "/bin", HOME: "/home/u", LC_ALL: "C", LC_CTYPE: "UTF-8", ANTHROPIC_BASE_URL: "http://x", CLAUDE_CONFIG_DIR: "/c" },
      [...DEFAULT_AGENT_ENV_ALLOW, "ANTHROPIC_*", "CLAUDE_CONFIG_DIR"],
    );
    expect(env).toEqual({ PATH: "/bin", HOME: "/home/u", LC_ALL: "C", LC_CTYPE: "UTF-8", ANTHROPIC_BASE_URL: "http://x", CLAUDE_CONFIG_DIR: "/c" });
  });

  it("keeps a provider's own variables out of the common allow-list", () => {
    expect(agentEnvironment({ PATH: "/bin", ANTHROPIC_API_KEY: "k", OPENAI_API_KEY: "o" })).toEqual({ PATH: "/bin" });
  });

  it("uses the default allow-list when none is given", () => {
    expect(agentEnvironment({ PATH: "/bin", AWS_SECRET_ACCESS_KEY: "s" })).toEqual({ PATH: "/bin" });
  });

  it("keeps out everything else, including near misses of allowed names", () => {
    const env = agentEnvironment(
      {
        AWS_SECRET_ACCESS_KEY: "s",
        GITHUB_TOKEN: "t",
        PATHX: "x", // an exact name is not a prefix
        XPATH: "x",
        path: "x", // names are case-sensitive
        LC: "x", // "LC_*" needs the underscore
        MY_ANTHROPIC_KEY: "x", // a prefix matches at the start only
      },
      DEFAULT_AGENT_ENV_ALLOW,
    );
    expect(env).toEqual({});
  });

  it("matches a custom allow-list of exact names and prefixes", () => {
    const env = agentEnvironment({ FOO: "1", FOOD: "2", BAR_A: "3", BAR: "4", BAZ: "5" }, ["FOO", "BAR_*"]);
    expect(env).toEqual({ FOO: "1", BAR_A: "3" });
  });

  it("never passes HOTPLEX_* variables, even when allowed by name or prefix", () => {
    const source = { HOTPLEX_TOKEN: "secret", HOTPLEX_LISTEN: "0.0.0.0:1", PATH: "/bin" };
    expect(agentEnvironment(source, ["HOTPLEX_TOKEN", "PATH"])).toEqual({ PATH: "/bin" });
    expect(agentEnvironment(source, ["HOTPLEX_*"])).toEqual({});
    expect(agentEnvironment(source, ["*"])).toEqual({ PATH: "/bin" });
  });

  it("skips variables whose value is undefined and keeps empty strings", () => {
    const env = agentEnvironment({ PATH: undefined, HOME: "", TERM: "xterm" }, DEFAULT_AGENT_ENV_ALLOW);
    expect(env).toEqual({ HOME: "", TERM: "xterm" });
    expect(Object.hasOwn(env, "PATH")).toBe(false);
  });

  it("returns a copy: changing it leaves the source alone", () => {
    const source: NodeJS.ProcessEnv = { PATH: "/bin" };
    const env = agentEnvironment(source);
    env["PATH"] = "/changed";
    expect(source["PATH"]).toBe("/bin");
  });
});

describe("environmentFor", () => {
  const daemon = { PATH: "/bin", LANG: "C", ANTHROPIC_API_KEY: "a", OPENAI_API_KEY: "o", OPERATOR_EXTRA: "x" };

  it("keeps one provider's variables away from another provider's agent", () => {
    expect(environmentFor(daemon, ["ANTHROPIC_*"], ["OPENAI_*"])).toEqual({ PATH: "/bin", LANG: "C", ANTHROPIC_API_KEY: "a", OPERATOR_EXTRA: "x" });
    expect(environmentFor(daemon, ["OPENAI_*"], ["ANTHROPIC_*"])).toEqual({ PATH: "/bin", LANG: "C", OPENAI_API_KEY: "o", OPERATOR_EXTRA: "x" });
  });

  it("keeps a variable both providers allow, and the common ones even when another provider lists them", () => {
    expect(environmentFor(daemon, ["ANTHROPIC_*"], ["ANTHROPIC_API_KEY", "PATH"])).toEqual(daemon);
  });
});

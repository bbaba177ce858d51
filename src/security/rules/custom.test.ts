// Operators' rules: valid ones match; invalid ones are refused naming the rule and field.
import { describe, expect, it } from "vitest";
import { BUILTIN_SETS, type CustomRuleSpec, customRuleSchema, DEFAULT_SETS, RuleConfigError, RuleEngine } from "./index.js";

const cmd = (command: string) => ({ kind: "command" as const, command, cwd: "/w/s", home: "/home/u" });

function refusal(options: Parameters<typeof RuleEngine.create>[0]): RuleConfigError {
  try {
    RuleEngine.create(options);
  } catch (error) {
    expect(error).toBeInstanceOf(RuleConfigError);
    return error as RuleConfigError;
  }
  throw new Error("expected a RuleConfigError");
}

describe("custom rules", () => {
  const custom: CustomRuleSpec[] = [
    { id: "custom.ask-touch", severity: "ask", description: "touching asked-* files needs a human", match: { kind: "command", program: "touch", args: ["asked-*"] } },
    { id: "no-force-push", severity: "block", description: "no force pushes", match: { kind: "command", program: "git", args: ["push"], flags: ["--force"] } },
    { id: "no-npm-publish", severity: "block", description: "no publishing", match: { kind: "command", program: ["npm", "pnpm", "yarn"], args: ["publish"] } },
    { id: "terraform-state", severity: "block", description: "terraform state is off limits", match: { kind: "path", paths: ["**/*.tfstate", "~/secrets/**"], operations: ["read", "write"] } },
    { id: "no-prod-words", severity: "warn", description: "mentions production", match: { kind: "prompt", pattern: "\\bprod(uction)? database\\b" } },
  ];
  const engine = RuleEngine.create({ sets: [], custom, allowPaths: [] });

  it("match commands by program and argument globs, through wrappers", () => {
    expect(engine.verdict(cmd("touch asked-first.txt")).matches.map((m) => m.ruleId)).toEqual(["custom.ask-touch"]);
    expect(engine.verdict(cmd("sh -c 'sudo touch asked-x'")).severity).toBe("ask");
    expect(engine.verdict(cmd("touch fine.txt")).severity).toBe("pass");
    expect(engine.verdict(cmd("pnpm publish --access public")).severity).toBe("block");
  });

  it("match flags in any spelling the rule names", () => {
    expect(engine.verdict(cmd("git push --force origin main")).severity).toBe("block");
    expect(engine.verdict(cmd("git push --force-with-lease")).severity).toBe("pass");
    expect(engine.verdict(cmd("git push origin main")).severity).toBe("pass");
  });

  it("match paths of commands and file tools", () => {
    expect(engine.verdict(cmd("cat infra/prod.tfstate")).severity).toBe("block");
    expect(engine.verdict({ kind: "file", operation: "write", path: "~/secrets/a/b", cwd: "/", home: "/home/u" }).severity).toBe("block");
    expect(engine.verdict({ kind: "file", operation: "delete", path: "x.tfstate", cwd: "/w", home: "/home/u" }).severity).toBe("pass");
  });

  it("match prompts by regular expression, and the set is 'custom'", () => {
    const { severity, matches } = engine.verdict({ kind: "prompt", text: "Drop the Production Database tables" });
    expect(severity).toBe("warn");
    expect(matches[0]).toMatchObject({ ruleId: "no-prod-words", set: "custom", evidence: "Production Database" });
  });

  it("parse with the exported schema", () => {
    for (const rule of custom) expect(customRuleSchema.safeParse(rule).success).toBe(true);
  });

  it("are refused when invalid, naming the rule and the field", () => {
    const bad: [unknown, string, string][] = [
      [{ id: "Bad Id", severity: "block", description: "x", match: { kind: "prompt", pattern: "x" } }, "Bad Id", "id"],
      [{ id: "r1", severity: "deny", description: "x", match: { kind: "prompt", pattern: "x" } }, "r1", "severity"],
      [{ id: "r2", severity: "warn", description: "", match: { kind: "prompt", pattern: "x" } }, "r2", "description"],
      [{ id: "r3", severity: "warn", description: "x", match: { kind: "regex", pattern: "x" } }, "r3", "match.kind"],
      [{ id: "r4", severity: "warn", description: "x", match: { kind: "prompt", pattern: "(" } }, "r4", "match.pattern"],
      [{ id: "r5", severity: "warn", description: "x", match: { kind: "command", program: [] } }, "r5", "match.program"],
      [{ id: "r6", severity: "warn", description: "x", match: { kind: "command", program: "git", flags: ["force"] } }, "r6", "match.flags.0"],
      [{ id: "r7", severity: "warn", description: "x", match: { kind: "path", paths: ["/x"], operations: ["exec"] } }, "r7", "match.operations.0"],
      [{ id: "r8", severity: "warn", description: "x", match: { kind: "prompt", pattern: "x" }, extra: 1 }, "r8", "(rule)"],
      [{ id: "destructive.delete-system", severity: "warn", description: "x", match: { kind: "prompt", pattern: "x" } }, "destructive.delete-system", "id"],
      [{ id: "r9", severity: "warn", description: "x" }, "r9", "match"],
    ];
    for (const [rule, name, field] of bad) {
      const error = refusal({ sets: BUILTIN_SETS, custom: [rule as CustomRuleSpec], allowPaths: [] });
      expect(error.rule, JSON.stringify(rule)).toBe(name);
      expect(error.field, JSON.stringify(rule)).toBe(field);
      expect(error.message).toContain(name);
    }
  });

  it("refuses duplicate ids, unknown sets and relative allow paths", () => {
    const rule: CustomRuleSpec = { id: "dup", severity: "warn", description: "x", match: { kind: "prompt", pattern: "x" } };
    expect(refusal({ sets: [], custom: [rule, rule], allowPaths: [] }).field).toBe("id");
    expect(refusal({ sets: ["destructive", "nope"], custom: [], allowPaths: [] }).field).toBe("sets.1");
    expect(refusal({ sets: [], custom: [], allowPaths: ["relative/dir"] }).field).toBe("allowPaths.0");
  });
});

describe("engine options", () => {
  it("default to every built-in set", () => {
    expect([...DEFAULT_SETS].sort()).toEqual([...BUILTIN_SETS].sort());
    expect(BUILTIN_SETS).toEqual(["destructive", "disk", "fork-bomb", "remote-exec", "credentials", "privilege", "persistence", "safeguards"]);
  });

  it("run only the sets enabled", () => {
    const engine = RuleEngine.create({ sets: ["disk"], custom: [], allowPaths: [] });
    expect(engine.verdict(cmd("rm -rf /")).severity).toBe("pass");
    expect(engine.verdict(cmd("mkfs.ext4 /dev/sda")).severity).toBe("block");
  });

  it("exempt writes and deletes under allowPaths from built-in path rules, not reads of keys", () => {
    const engine = RuleEngine.create({ sets: BUILTIN_SETS, custom: [], allowPaths: ["/opt/app", "~/.bashrc"] });
    expect(engine.verdict(cmd("rm -rf /opt/app/cache")).severity).toBe("pass");
    expect(engine.verdict(cmd("rm -rf /opt/other")).severity).toBe("block");
    expect(engine.verdict(cmd("echo x >> ~/.bashrc")).severity).toBe("pass");
    expect(engine.verdict({ kind: "file", operation: "write", path: "/opt/app/x", cwd: "/", home: "/home/u" }).severity).toBe("pass");
    expect(engine.verdict({ kind: "file", operation: "write", path: "/opt/./app/../x", cwd: "/", home: "/home/u" }).severity).toBe("block");
  });

  it("order matches block, ask, warn and bound the evidence", () => {
    const engine = RuleEngine.create({ sets: BUILTIN_SETS, custom: [], allowPaths: [] });
    const matches = engine.judge(cmd(`sudo rm -rf /usr/${"x/".repeat(400)} ; echo x >> ~/.bashrc`));
    expect(matches.map((m) => m.severity)).toEqual([...matches.map((m) => m.severity)].sort((a, b) => ["block", "ask", "warn"].indexOf(a) - ["block", "ask", "warn"].indexOf(b)));
    expect(matches[0]?.severity).toBe("block");
    for (const m of matches) expect(m.evidence.length).toBeLessThanOrEqual(256);
  });
});

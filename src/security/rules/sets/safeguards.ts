/**
 * Disabling the sandbox or the agent's own safeguards: the flags that make a coding
 * agent skip its permission checks, variables that tell it it is sandboxed or turn
 * hotplex's sandbox off, editing the agents' settings and hooks files (where the
 * permission rules and hooks live) or the daemon's own files, killing the sandbox, and
 * switching off the kernel's and firewall's protections.
 */
import { homeRelative, isUnder } from "../normalize.js";
import { describe, type RuleDef, ruleSet } from "../rule.js";

const BYPASS_FLAGS = /^--(dangerously-[a-z-]+|yolo|allow-dangerously-skip-permissions|full-auto-unsafe|no-sandbox-unsafe)$|^(--permission-mode|--approval-mode|--sandbox|-s|--ask-for-approval|-a)?=?(bypassPermissions|danger-full-access|yolo)$/;
const GUARD_VARS = /^(IS_SANDBOX|HOTPLEX_[A-Z0-9_]*|[A-Z0-9_]*DANGEROUSLY[A-Z0-9_]*|[A-Z0-9_]*(SKIP|BYPASS|DISABLE)_(PERMISSIONS?|SANDBOX|APPROVALS?|HOOKS)[A-Z0-9_]*)$/;
/** Where agents keep permission settings and hooks, in the home or in a project. */
const AGENT_SETTINGS = /(^|\/)\.(claude|codex|gemini|opencode|qwen|cursor|continue|aider[^/]*)(\/(settings[^/]*\.json|config\.(toml|json|ya?ml)|hooks(\/.*)?|policies(\/.*)?|permissions[^/]*))?$|(^|\/)\.config\/opencode(\/.*)?$|(^|\/)(\.claude\.json|opencode\.jsonc?|AGENTS\.override\.md)$/;
/** The daemon's own config, database and state; the work root inside it is the sessions'. */
const DAEMON_FILES = /^~\/\.hotplex(\/.*)?$/;
const KILLERS = new Set(["pkill", "killall", "setenforce", "aa-teardown", "apparmor_parser", "aa-disable", "systemctl", "service", "ufw", "iptables", "ip6tables", "nft", "bwrap", "bubblewrap", "hotplexd"]);
const SANDBOX_PROGRAMS = /^(bwrap|bubblewrap|hotplexd|firejail|nsjail|apparmor|auditd|falco|osqueryd)$/;

export const SAFEGUARDS = ruleSet("safeguards", [
  {
    id: "agent-bypass-flag",
    severity: "block",
    description: "starts an agent with its permission checks or sandbox turned off",
    invocation(inv) {
      if (!inv.hot) return undefined;
      const args = inv.args.map((w) => w.text);
      for (let k = 0; k < args.length; k += 1) {
        const a = args[k]!;
        if (BYPASS_FLAGS.test(a) && (a.startsWith("--") || a.includes("="))) return inv.line;
        if (/^(--permission-mode|--approval-mode|--sandbox|-s|--ask-for-approval)$/.test(a) && /^(bypassPermissions|danger-full-access|yolo)$/.test(args[k + 1] ?? "")) return inv.line;
      }
      return undefined;
    },
  },
  {
    id: "sandbox-env",
    severity: "block",
    description: "sets a variable that disables a sandbox or an agent's safeguards (IS_SANDBOX, HOTPLEX_*)",
    facts(facts) {
      const hit = facts.assignments.find((a) => GUARD_VARS.test(a.name));
      return hit === undefined ? undefined : `${hit.name}=${hit.value}`;
    },
  },
  {
    id: "agent-settings",
    severity: "block",
    description: "changes or deletes an agent's settings or hooks, or the daemon's own files",
    file(file, ctx) {
      if (file.op === "read" || ctx.allowed(file.path)) return undefined;
      const p = homeRelative(file.path, ctx.home);
      if (AGENT_SETTINGS.test(p)) return describe(file);
      const inWorkRoot = ctx.workRoot !== undefined && isUnder(file.path, ctx.workRoot);
      return DAEMON_FILES.test(p) && !inWorkRoot ? describe(file) : undefined;
    },
  },
  {
    id: "kill-sandbox",
    severity: "block",
    description: "kills the sandbox or switches off kernel, audit or firewall protection",
    invocation(inv) {
      const p = inv.program;
      if (!KILLERS.has(p)) return undefined;
      const args = inv.args.map((w) => w.text);
      if ((p === "pkill" || p === "killall") && args.some((a) => SANDBOX_PROGRAMS.test(a))) return inv.line;
      if (p === "setenforce" && args[0] === "0") return inv.line;
      if (p === "aa-teardown" || (p === "apparmor_parser" && args.includes("-R")) || (p === "aa-disable" && args.length > 0)) return inv.line;
      if ((p === "systemctl" || p === "service") && args.some((a) => /^(stop|disable|mask|kill)$/.test(a)) && args.some((a) => /apparmor|auditd|firewalld|ufw|selinux|falco|osquery/.test(a))) return inv.line;
      if (p === "ufw" && args[0] === "disable") return inv.line;
      if ((p === "iptables" || p === "ip6tables") && args.some((a) => a === "-F" || a === "--flush" || a === "-X") ) return inv.line;
      if (p === "nft" && args.join(" ").includes("flush ruleset")) return inv.line;
      if ((p === "bwrap" || p === "bubblewrap") && /--(dev-)?bind \/ \//.test(args.join(" "))) return inv.line;
      if (p === "hotplexd" && args.some((a, k) => (a === "--sandbox" && args[k + 1] === "off") || a === "--sandbox=off")) return inv.line;
      return undefined;
    },
  },
] satisfies RuleDef[]);

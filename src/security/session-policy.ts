import type { SessionConfig } from "../../gen/hotplex/v1/session_pb.js";
import { HotplexError } from "../errors.js";
import type { SessionPolicy } from "./tenant-policy.js";

function denied(setting: string, message: string): HotplexError {
  return new HotplexError("permission_denied", `config.${setting}: ${message}`);
}

/**
 * Checks a session config against its tenant's policy: a config may narrow what the policy
 * allows, never widen it. Throws PERMISSION_DENIED naming the first setting that asks for
 * more. (Whether a value is well formed at all is validated before, as INVALID_ARGUMENT.)
 */
export function checkSessionPolicy(config: SessionConfig, policy: SessionPolicy): void {
  if (config.permissionMode && !policy.permissionModes.includes(config.permissionMode)) {
    throw denied(
      "permission_mode",
      `"${config.permissionMode}" is not allowed for this tenant (allowed: ${policy.permissionModes.join(", ") || "none"})`,
    );
  }
  if (config.model && !matchesAny(config.model, policy.models)) {
    throw denied("model", `"${config.model}" is not allowed for this tenant (allowed: ${policy.models.join(", ") || "none"})`);
  }
  config.allowedTools.forEach((rule, index) => {
    if (!toolRuleAllowed(rule, policy.allowedTools)) {
      throw denied(`allowed_tools[${index}]`, `"${rule}" goes beyond the tools this tenant may pre-allow (${policy.allowedTools.join(", ") || "none"})`);
    }
  });
  if (config.systemPrompt && !policy.allowSystemPrompt) {
    throw denied("system_prompt", "this tenant may not replace the agent's system prompt (append_system_prompt may still be allowed)");
  }
  if (config.appendSystemPrompt && !policy.allowAppendSystemPrompt) {
    throw denied("append_system_prompt", "this tenant may not add to the agent's system prompt");
  }
  const idleMs = config.idleTimeoutSeconds * 1000;
  if (policy.maxIdleTimeoutMs > 0 && idleMs > policy.maxIdleTimeoutMs) {
    throw denied(
      "idle_timeout_seconds",
      `${config.idleTimeoutSeconds} is longer than this tenant's maximum of ${Math.floor(policy.maxIdleTimeoutMs / 1000)} seconds`,
    );
  }
}

/**
 * The disallowed tools a session runs with: its own, plus every one the policy disallows
 * (a config cannot remove those), without duplicates.
 */
export function effectiveDisallowedTools(config: SessionConfig, policy: SessionPolicy): string[] {
  return [...new Set([...policy.disallowedTools, ...config.disallowedTools])];
}

function matchesAny(value: string, patterns: readonly string[]): boolean {
  return patterns.some((pattern) => (pattern.endsWith("*") ? value.startsWith(pattern.slice(0, -1)) : value === pattern));
}

// A rule passes when the policy has "*", the same rule, or the rule's tool bare: "Bash"
// allows "Bash(git:*)". "Bash(git:*)" in the policy does not allow "Bash(rm:*)" or "Bash".
function toolRuleAllowed(rule: string, allowed: readonly string[]): boolean {
  if (allowed.includes("*") || allowed.includes(rule)) return true;
  const paren = rule.indexOf("(");
  const tool = paren === -1 ? rule : rule.slice(0, paren);
  return paren !== -1 && allowed.includes(tool);
}

import { create } from "@bufbuild/protobuf";
import { type RuleMatched, RuleMatchedSchema, RuleSeverity } from "../../gen/hotplex/v1/event_pb.js";
import type { RuleInput, RuleMatch, Severity } from "../security/rules/index.js";

/** What the rules say about one input, for one session. */
export interface RuleVerdict {
  /** The strongest severity that matched ("pass": none). */
  severity: Severity | "pass";
  matches: RuleMatch[];
  /** The session's rules are lifted (an admin's bypass): the matches have no effect. */
  bypassed: boolean;
}

/** How a session has its agent's tool calls judged, and what it reports back for the audit log. */
export interface ToolCallRules {
  judge(input: RuleInput): RuleVerdict;
  /** A block, an ask or a bypassed match, for the audit log (`input`: what was judged). */
  audit(kind: "rule_blocked" | "rule_asked" | "rule_bypassed", match: RuleMatch, input: string): void;
}

const SEVERITIES: Record<Severity, RuleSeverity> = { block: RuleSeverity.BLOCK, ask: RuleSeverity.ASK, warn: RuleSeverity.WARN };

/** A match as the RuleMatched event logs it. */
export function ruleMatched(match: RuleMatch, bypassed: boolean, requestId = "", toolUseId = ""): RuleMatched {
  return create(RuleMatchedSchema, {
    ruleId: match.ruleId,
    severity: SEVERITIES[match.severity],
    description: match.description,
    ruleSet: match.set,
    evidence: match.evidence.slice(0, 256),
    requestId,
    toolUseId,
    bypassed,
  });
}

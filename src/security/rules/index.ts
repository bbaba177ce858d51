/** The danger detector's rule engine: the public API. */
export { BUILTIN_SETS, DEFAULT_SETS, PROMPT_CWD, PROMPT_HOME, RuleEngine } from "./engine.js";
export { customRuleSchema } from "./custom.js";
export { isInstruction } from "./prompt.js";
export { type CustomMatch, type CustomRuleSpec, LIMITS, RuleConfigError, type RuleEngineOptions, type RuleInput, type RuleMatch, type Severity } from "./types.js";

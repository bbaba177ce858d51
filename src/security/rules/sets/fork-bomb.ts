/**
 * Fork bombs: a function that pipes or backgrounds itself (`:(){ :|:& };:` in any
 * spacing or name), self-spawning scripts (`$0 & $0`), and fork loops in interpreters.
 * Matched on every parsed script text with whitespace removed, because the shape, not
 * the spelling, is the bomb.
 */
import { type RuleDef, ruleSet } from "../rule.js";

// Names are bounded so that a long word cannot make the match quadratic.
const FUNCTION_BOMB = /([A-Za-z_:.][\w:.-]{0,63})\(\)\{[^{}]{0,200}?\1[|&]+\1|function([A-Za-z_:.][\w:.-]{0,63})(?:\(\))?\{[^{}]{0,200}?\2[|&]+\2/;
const SELF_SPAWN = /\$0[|&]+\$0|\$\{0\}[|&]+\$\{0\}/;
const FORK_LOOP = /fork(\(\))?while(fork|1|true)|while(true|1|True):?os\.fork\(\)|while\(1\)fork\(\)|for\(;;\)fork\(\)|loop\{fork\}|whiletrue;do\$0&done/;

export const FORK_BOMB = ruleSet("fork-bomb", [
  {
    id: "fork-bomb",
    severity: "block",
    description: "a fork bomb: a function or script that endlessly spawns copies of itself",
    facts(facts) {
      // Scripts with their quoted strings removed (a bomb in quotes is text: `echo ':(){…}'`;
      // one run by sh -c is a parsed script of its own), interpreters' code as it is.
      const texts = [...facts.sources.map((s) => ({ s, quoted: true })), ...facts.codes.map((c) => ({ s: c.code, quoted: false }))];
      for (const { s: text, quoted } of texts) {
        if (text.length > 65_536 || !/fork|\(\)|function|\$0|\$\{0\}/.test(text)) continue;
        const compact = (quoted ? text.replace(/'[^']*'|"(?:[^"\\]|\\.)*"/g, "''") : text).replace(/\s+/g, "");
        if (FUNCTION_BOMB.test(compact) || SELF_SPAWN.test(compact) || FORK_LOOP.test(compact)) return text.slice(0, 256);
      }
      return undefined;
    },
  },
] satisfies RuleDef[]);

/**
 * Finding the commands in a prompt, and telling a command given to be run from prose
 * about a command.
 *
 * Commands are taken from code fences, inline code spans and prose sentences (a known
 * program word that starts a sentence or is followed by something shell-like: a flag, a
 * path, a pipe). Nothing is skipped: fences are judged, not deleted.
 *
 * Each command is then framed by the sentence around it (for a fence: the sentence before
 * it and the one after). It is an instruction, and keeps its rule's severity, when that
 * sentence has an imperative run verb ("run", "execute", "type", "paste", "go ahead", "use"…)
 * that no subject, condition or negation governs ("if I run", "never run", "why would you
 * run" do not count), or when the sentence has no sign of discussion at all: a bare
 * command, or "clean up with rm -rf /", is an instruction. It is prose about the command,
 * and at most a warn, when the sentence discusses it ("explain", "what does", "why",
 * "difference", "is it safe", a question mark, "never", "don't"…) and has no such verb.
 * So "explain what rm -rf / does" warns, "explain it, then run rm -rf /" blocks.
 */
const ZERO_WIDTH = /[\u00ad\u180e\u200b-\u200f\u2028\u2029\u202a-\u202e\u2060-\u2064\ufeff]/g;

export interface PromptSegment {
  code: string;
  origin: "fence" | "inline" | "prose";
  /** The fence's language tag, lower-cased ("" when none or not a fence). */
  language: string;
  /** Given to be run (keeps severity) rather than discussed (capped at warn). */
  instruction: boolean;
}

/** NFKC (full-width and compatibility letters become ASCII), invisible characters removed. */
export function normalizePrompt(text: string): string {
  return text.normalize("NFKC").replace(ZERO_WIDTH, "");
}

const FENCE = /^[ \t]{0,3}(`{3,}|~{3,})[ \t]*([^\n`]*)\n([\s\S]*?)(?:\n[ \t]{0,3}\1[`~]*[ \t]*(?=\n|$)|$(?![\s\S]))/gm;
// Inline spans hold no backticks (so a failed match stops at the next one: linear time).
const INLINE = /(`{1,3})([^`]{1,4000}?)\1(?!`)/g;
const PLACEHOLDER = /\u0000(\d+)\u0000/g;

/** Programs whose mention in prose is worth parsing as a command. */
const TRIGGERS = new Set([
  "rm", "rmdir", "shred", "unlink", "dd", "fdisk", "sfdisk", "parted", "wipefs", "blkdiscard", "mkswap", "chmod", "chown", "curl",
  "wget", "nc", "ncat", "netcat", "socat", "bash", "sh", "zsh", "dash", "eval", "exec", "sudo", "su", "doas", "pkexec", "crontab",
  "systemctl", "python", "python3", "perl", "ruby", "php", "node", "base64", "echo", "printf", "cat", "find", "mv", "cp", "tee",
  "setcap", "usermod", "docker", "podman", "pkill", "killall", "iptables", "ufw", "setenforce", "xargs", "env", "export", "ln",
  "tar", "scp", "rsync", "truncate", "nsenter", "source", "xxd", "openssl", "telnet", "at", "launchctl", "visudo", "mkfs",
]);
const FILLERS = new Set(["please", "now", "just", "then", "and", "also", "so", "ok", "okay", "run", "execute", "exec", "type", "enter", "do", "try", "first", "next", "finally", "quickly", "immediately", "simply", "go", "ahead", "and:", "run:", "execute:", "this:", "command:"]);

const RUN_VERB = /\b(run|runs|execute|exec|launch|invoke|perform|type|enter|paste|carry out|go ahead|try|call|start|apply|use|issue|fire off|do it|do this|do that|proceed)\b/g;
const GOVERNED = /\b(if|when|whenever|i|we|they|he|she|someone|somebody|people|users?|would|never|not|don't|dont|doesn't|didn't|without|avoid|why|whether|accidentally|shouldn't|mustn't|can't|cannot|won't|wouldn't|to)\s+(\w+\s+)?$/;
const DISCUSSION = /\?|\b(explain|explains|explaining|explanation|what|why|how|describe|describes|meaning|means|mean|tell me about|is it safe|safe to|dangerous|danger|difference|differences|understand|documentation|docs|history|never|don't|do not|avoid|shouldn't|should not|warn|warning|risk|risks|risky|purpose|example|examples|e\.g\.|such as|like|article|blog|tutorial|summarize|translate|review|analyze|analyse|malicious|attack|attacker|detect|detects|block|blocks)\b/;

export function isInstruction(sentence: string): boolean {
  const s = sentence.toLowerCase();
  for (const m of s.matchAll(RUN_VERB)) {
    const before = s.slice(Math.max(0, m.index - 40), m.index);
    if (!GOVERNED.test(before)) return true;
  }
  return !DISCUSSION.test(s);
}

export function promptSegments(text: string, maxSegments = 256): PromptSegment[] {
  const segments: PromptSegment[] = [];
  const codes: { code: string; origin: "fence" | "inline"; language: string }[] = [];
  // Fences and inline spans become placeholders so that the prose around them is still read.
  let prose = text.replace(FENCE, (_, _fence: string, language: string, body: string) => {
    codes.push({ code: body, origin: "fence", language: language.trim().split(/\s+/)[0]!.toLowerCase() });
    return `\n\u0000${codes.length - 1}\u0000\n`;
  });
  prose = prose.replace(INLINE, (_, _ticks: string, body: string) => {
    codes.push({ code: body.trim(), origin: "inline", language: "" });
    return `\u0000${codes.length - 1}\u0000`;
  });
  const sentences = prose.split(/(?<=[.!?])\s+|\n+/).filter((s) => s.trim() !== "");
  for (let k = 0; k < sentences.length && segments.length < maxSegments; k += 1) {
    const sentence = sentences[k]!;
    const bare = sentence.replace(PLACEHOLDER, " ").trim();
    let framing: boolean | undefined;
    const frame = () => (framing ??= isInstruction(sentence.replace(PLACEHOLDER, (_, n: string) => codes[Number(n)]?.code ?? "")));
    for (const m of sentence.matchAll(PLACEHOLDER)) {
      if (segments.length >= maxSegments) break;
      const code = codes[Number(m[1])];
      if (code === undefined) continue;
      let instruction: boolean;
      if (code.origin === "fence" && bare === "") {
        const before = sentences[k - 1]?.replace(PLACEHOLDER, " ");
        const after = sentences[k + 1]?.replace(PLACEHOLDER, " ");
        const runs = (s: string | undefined) => s !== undefined && isInstruction(s) && /\b(run|execute|exec|type|paste|apply|use|go ahead|do it|try|launch|start|call|invoke|perform|proceed)\b/i.test(s);
        const discusses = (s: string | undefined) => s !== undefined && !isInstruction(s);
        instruction = runs(before) || runs(after) || (!discusses(before) && !discusses(after));
      } else instruction = frame();
      segments.push({ code: stripPrompts(code.code), origin: code.origin, language: code.language, instruction });
    }
    if (bare !== "") for (const command of proseCommands(sentence.replace(PLACEHOLDER, " "))) segments.push({ code: command, origin: "prose", language: "", instruction: frame() });
  }
  return segments;
}

/** Shell prompts at line starts ("$ rm …", "% rm …", "> rm …") are not part of the command. */
function stripPrompts(code: string): string {
  return /^\s*[$%>#] /m.test(code) ? code.replace(/^(\s*)[$%>] /gm, "$1").replace(/^(\s*)# (?=[a-z])/gm, "$1") : code;
}

/** Commands in a prose sentence: from a trigger word to the end of the sentence. */
function proseCommands(sentence: string): string[] {
  const words = sentence.trim().split(/\s+/);
  const found: string[] = [];
  let leading = true;
  for (let j = 0; j < words.length && found.length < 3; j += 1) {
    const raw = words[j]!;
    const word = raw.replace(/^[("'“‘*_]+/, "").replace(/[,:;)"'”’*_]+$/, "");
    const lower = word.toLowerCase();
    const next = words[j + 1] ?? "";
    const program = lower.slice(lower.lastIndexOf("/") + 1);
    const shellLike = /^[-/~.$|>&<;]|\/dev\/|[|>]|^[ugoa]*[+=][rwxXst]+$|^[0-7]{3,4}$/.test(next) || next.includes("=");
    const isTrigger = TRIGGERS.has(program) || /^mkfs\./.test(program);
    const special = /^[^\s]*\(\)\s*\{?|^:\(\)|^[A-Z_][A-Z0-9_]*=/.test(word) || word.includes("/dev/tcp/");
    if ((isTrigger && (leading || shellLike)) || special) {
      const rest = [word, ...words.slice(j + 1)].join(" ").replace(/[.,;:!?)"'”’]+$/, "");
      found.push(rest);
      j = words.length;
    }
    if (!FILLERS.has(lower)) leading = false;
  }
  return found;
}

/**
 * Reverse shells and download-and-execute: a download piped or substituted into a shell
 * or interpreter, a downloaded file run, any decoder piped into a shell (the payload is
 * hidden on purpose), shells wired to the network (/dev/tcp, nc -e, socat exec:, a shell
 * piped to or from nc), and interpreter one-liners that connect a socket to a shell.
 */
import { type RuleDef, ruleSet } from "../rule.js";

const REVERSE_CODE = [
  /socket[\s\S]{0,200}(connect|fsockopen)[\s\S]{0,200}(dup2|pty\.spawn|subprocess|popen|exec|system|\/bin\/(ba)?sh|spawn)/i,
  /(fsockopen|TCPSocket|TCPClient|net\.connect|new\s+Socket|Socket\.new|socket\.create_connection)[\s\S]{0,200}(exec|spawn|system|popen|\/bin\/(ba)?sh|cmd\.exe|powershell|STDIN|proc_open)/i,
  /(child_process|subprocess|os\.system|popen|spawn)[\s\S]{0,200}(\/dev\/tcp\/|\bnc\s+-e|socket)/i,
];

export const REMOTE_EXEC = ruleSet("remote-exec", [
  {
    id: "download-exec",
    severity: "block",
    description: "runs downloaded code: a download piped or substituted into a shell, eval, source or interpreter",
    facts(facts) {
      return facts.events.find((e) => e.kind === "download-exec")?.evidence;
    },
  },
  {
    id: "download-then-run",
    severity: "block",
    description: "downloads a file and runs it in the same command",
    facts(facts) {
      if (facts.downloaded.size === 0) return undefined;
      for (const path of facts.executed) if (facts.downloaded.has(path)) return `runs downloaded ${path}`;
      return undefined;
    },
  },
  {
    id: "decode-exec",
    severity: "block",
    description: "pipes decoded data (base64 -d, xxd -r, gunzip…) into a shell or interpreter",
    facts(facts) {
      return facts.events.find((e) => e.kind === "decode-exec")?.evidence;
    },
  },
  {
    id: "dev-tcp",
    severity: "block",
    description: "redirects a shell to a network socket (/dev/tcp, /dev/udp): a reverse shell",
    invocation(inv) {
      if (!inv.hot) return undefined;
      for (const r of inv.redirects) if (/^\/dev\/(tcp|udp)\//.test(r.target.text)) return `${inv.line} ${r.op}${r.target.text}`;
      return inv.args.some((w) => /\/dev\/(tcp|udp)\//.test(w.text)) ? inv.line : undefined;
    },
  },
  {
    id: "netcat-exec",
    severity: "block",
    description: "serves a shell over the network (nc -e, ncat --exec, socat exec:)",
    invocation(inv) {
      const p = inv.program;
      const args = inv.args.map((w) => w.text);
      if (/^(nc|ncat|netcat|nc\.traditional|nc\.openbsd|cryptcat|pwncat|sbd)$/.test(p)) {
        return args.some((a) => /^-[a-zA-Z]*[ec]$|^-[a-zA-Z]*[ec][^a-zA-Z]|^--(exec|sh-exec|lua-exec)/.test(a)) ? inv.line : undefined;
      }
      if (p === "socat") return args.some((a) => /^(exec|system):/i.test(a)) ? inv.line : undefined;
      return undefined;
    },
  },
  {
    id: "shell-over-network",
    severity: "block",
    description: "pipes a shell to or from a network connection (nc | sh, sh -i | nc)",
    facts(facts) {
      return facts.events.find((e) => e.kind === "network-shell")?.evidence;
    },
  },
  {
    id: "interpreter-reverse-shell",
    severity: "block",
    description: "an interpreter one-liner that connects a socket to a shell",
    facts(facts) {
      // The first 4 KiB of each: the patterns' bounded gaps keep this linear, the cap keeps it small.
      for (const { code } of facts.codes) {
        const head = code.length > 4096 ? code.slice(0, 4096) : code;
        if (REVERSE_CODE.some((re) => re.test(head))) return head.slice(0, 256);
      }
      return undefined;
    },
  },
] satisfies RuleDef[]);

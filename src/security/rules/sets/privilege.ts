/**
 * Privilege escalation: running as root (sudo, su, doas, pkexec), setuid/setgid bits and
 * file capabilities, adding users to admin groups, and escaping into the host through a
 * privileged container or the docker socket.
 */
import { type RuleDef, ruleSet } from "../rule.js";

const ROOT_RUNNERS = new Set(["sudo", "su", "doas", "pkexec", "sudoedit", "visudo", "runuser", "run0", "sudo-rs", "calife", "ksu"]);
const USER_ADMIN = new Set(["usermod", "useradd", "adduser", "gpasswd", "addgroup"]);
const ADMIN_GROUPS = /(^|,)(sudo|wheel|admin|root|docker|lxd|disk|shadow|adm)(,|$)/;

export const PRIVILEGE = ruleSet("privilege", [
  {
    id: "run-as-root",
    severity: "ask",
    description: "runs a command as another user, usually root (sudo, su, doas, pkexec)",
    invocation(inv) {
      if (ROOT_RUNNERS.has(inv.program)) return inv.line;
      const wrapper = inv.via.find((v) => ROOT_RUNNERS.has(v));
      return wrapper === undefined ? undefined : `${wrapper} ${inv.line}`;
    },
  },
  {
    id: "setuid",
    severity: "block",
    description: "sets the setuid or setgid bit (chmod u+s, 4755)",
    invocation(inv) {
      if (inv.program !== "chmod" && inv.program !== "install") return undefined;
      const modes = inv.program === "chmod" ? inv.args.map((w) => w.text) : inv.args.flatMap((w, k) => (w.text === "-m" || w.text === "--mode" ? [inv.args[k + 1]?.text ?? ""] : w.text.startsWith("--mode=") ? [w.text.slice(7)] : w.text.startsWith("-m") ? [w.text.slice(2)] : []));
      return modes.some((m) => /^[ugoa]*[+=][rwxXt]*s/.test(m) || /(^|,)[ugoa]*[+=][^,]*s/.test(m) || /^0?[2467][0-7]{3}$/.test(m)) ? inv.line : undefined;
    },
  },
  {
    id: "setcap",
    severity: "block",
    description: "grants file capabilities (setcap)",
    invocation(inv) {
      return inv.program === "setcap" && inv.args.length > 0 && !inv.args.some((w) => w.text === "-r") ? inv.line : undefined;
    },
  },
  {
    id: "admin-group",
    severity: "block",
    description: "adds a user to an admin group or creates a uid-0 user",
    invocation(inv) {
      if (!USER_ADMIN.has(inv.program)) return undefined;
      const args = inv.args.map((w) => w.text);
      if (["usermod", "useradd", "adduser", "gpasswd", "addgroup"].includes(inv.program)) {
        for (let k = 0; k < args.length; k += 1) {
          const a = args[k]!;
          if (/^-[a-zA-Z]*[Ga]$|^--groups$|^--append$|^-a$/.test(a) && ADMIN_GROUPS.test(args[k + 1] ?? "")) return inv.line;
          if (/^--groups=/.test(a) && ADMIN_GROUPS.test(a.slice(9))) return inv.line;
          if ((a === "-u" || a === "--uid") && args[k + 1] === "0") return inv.line;
        }
        if ((inv.program === "adduser" || inv.program === "addgroup") && args.length === 2 && ADMIN_GROUPS.test(args[1]!)) return inv.line;
      }
      return undefined;
    },
  },
  {
    id: "container-escape",
    severity: "block",
    description: "starts a privileged or host-sharing container, or drives the container daemon's socket",
    invocation(inv) {
      if (!inv.hot && !/^(docker|podman|nerdctl|nsenter)$/.test(inv.program)) return undefined;
      const args = inv.args.map((w) => w.text);
      if (/^(docker|podman|nerdctl)$/.test(inv.program) && args.some((a) => /^(run|create|exec)$/.test(a))) {
        for (let k = 0; k < args.length; k += 1) {
          const a = args[k]!;
          const v = args[k + 1] ?? "";
          if (a === "--privileged" || /^--(pid|ipc|uts|userns|cgroupns)(=|$)host/.test(a + (a.includes("=") ? "" : "=" + v)) && (a.includes("host") || v === "host")) return inv.line;
          if (/^--cap-add(=|$)/.test(a) && /sys_admin|all|sys_ptrace|sys_module/i.test(a.includes("=") ? a : v)) return inv.line;
          if (/^(-v|--volume|--mount)(=|$)/.test(a) || /^-v\//.test(a)) {
            const spec = a.includes("=") ? a.slice(a.indexOf("=") + 1) : a.startsWith("-v/") ? a.slice(2) : v;
            if (/^\/(:|$)|source=\/(,|$)|docker\.sock|^\/(etc|root|proc|sys|var\/run|run)(\/|:|$)/.test(spec)) return inv.line;
          }
          if (/^--security-opt(=|$)/.test(a) && /unconfined|no-new-privileges=false/.test(a.includes("=") ? a : v)) return inv.line;
        }
      }
      if (inv.program === "nsenter" && inv.args.some((w) => /^(-t|--target)(=?1)?$/.test(w.text)) && inv.args.some((w) => /^(1|--target=1|-t1)$/.test(w.text))) return inv.line;
      if (inv.args.some((w) => /docker\.sock|podman\.sock|containerd\.sock/.test(w.text)) && /^(curl|socat|nc|ncat|docker)$/.test(inv.program)) return inv.line;
      return undefined;
    },
  },
] satisfies RuleDef[]);

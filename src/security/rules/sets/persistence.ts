/**
 * Persistence: making something run again later or at every login: cron and at jobs,
 * systemd units and launch agents, autostart entries, login keys, preloaded libraries,
 * shell start-up files (those are `ask`: adding a PATH entry is a common, legitimate
 * setup step, so a human decides).
 */
import { homeRelative } from "../normalize.js";
import { describe, type RuleDef, ruleSet } from "../rule.js";

const SCHEDULED = [/^\/etc\/(cron[^/]*|anacrontab)(\/.*)?$/, /^\/var\/spool\/(cron|at)(\/.*)?$/, /^\/etc\/at\.(allow|deny)$/];
const SERVICES = [
  /^\/(etc|lib|usr\/lib|usr\/local\/lib|run)\/systemd\/.*/, /^~\/\.config\/systemd(\/.*)?$/, /^~\/\.local\/share\/systemd(\/.*)?$/,
  /^(~\/|\/)Library\/Launch(Agents|Daemons)(\/.*)?$/, /^~\/\.config\/autostart(\/.*)?$/, /^\/etc\/xdg\/autostart(\/.*)?$/,
  /^\/etc\/(rc\.local|init\.d\/.*|rc\d\.d\/.*|ld\.so\.preload|profile\.d\/.*|update-motd\.d\/.*)$/,
];
const LOGIN_KEYS = [/\/\.ssh\/(authorized_keys2?|rc|environment)$/, /^\/etc\/ssh\/sshd_config(\.d\/.*)?$/];
const SHELL_RC = /^(~|\/root)\/(\.(bashrc|bash_profile|bash_login|bash_logout|profile|zshrc|zprofile|zshenv|zlogin|zlogout|kshrc|mkshrc|cshrc|tcshrc|xprofile|xinitrc|xsession)|\.config\/fish\/(config\.fish|conf\.d\/.*)|\.oh-my-zsh\/custom\/.*)$|^\/etc\/(profile|bash\.bashrc|bashrc|zshrc|zsh\/.*|environment)$/;

export const PERSISTENCE = ruleSet("persistence", [
  {
    id: "cron",
    severity: "block",
    description: "installs a cron or at job",
    invocation(inv) {
      if (inv.program === "crontab") {
        const args = inv.args.map((w) => w.text);
        return args.length > 0 && args.every((a) => a === "-l" || a === "-u" || /^-[a-z]*l$/.test(a) || !a.startsWith("-") && args[args.indexOf(a) - 1] === "-u") ? undefined : inv.line;
      }
      if ((inv.program === "at" || inv.program === "batch") && inv.args.some((w) => !/^-[lqrdc]/.test(w.text))) return inv.line;
      return undefined;
    },
    file(file) {
      return file.op !== "read" && SCHEDULED.some((re) => re.test(file.path)) ? describe(file) : undefined;
    },
  },
  {
    id: "service",
    severity: "block",
    description: "installs a systemd unit, launch agent, autostart entry, init script or preloaded library",
    file(file, ctx) {
      if (file.op === "read" || ctx.allowed(file.path)) return undefined;
      const p = homeRelative(file.path, ctx.home);
      return SERVICES.some((re) => re.test(p)) ? describe(file) : undefined;
    },
  },
  {
    id: "enable-service",
    severity: "ask",
    description: "enables a service or loads a launch agent to start at boot or login",
    invocation(inv) {
      if (!/^(systemctl|launchctl|update-rc\.d|chkconfig|rc-update)$/.test(inv.program)) return undefined;
      const args = inv.args.map((w) => w.text).filter((a) => !a.startsWith("-"));
      if (inv.program === "systemctl" && /^(enable|link|reenable|preset|edit|add-wants|add-requires|set-default)$/.test(args[0] ?? "")) return inv.line;
      if (inv.program === "launchctl" && /^(load|bootstrap|submit|enable)$/.test(args[0] ?? "")) return inv.line;
      if ((inv.program === "update-rc.d" || inv.program === "chkconfig" || inv.program === "rc-update") && args.length > 0) return inv.line;
      return undefined;
    },
  },
  {
    id: "login-keys",
    severity: "block",
    description: "changes SSH login keys or the SSH daemon's configuration",
    file(file, ctx) {
      if (file.op === "read" || ctx.allowed(file.path)) return undefined;
      return LOGIN_KEYS.some((re) => re.test(file.path)) ? describe(file) : undefined;
    },
  },
  {
    id: "shell-rc",
    severity: "ask",
    description: "changes a shell start-up file (runs at every login)",
    file(file, ctx) {
      if (file.op === "read" || ctx.allowed(file.path)) return undefined;
      return SHELL_RC.test(homeRelative(file.path, ctx.home)) ? describe(file) : undefined;
    },
  },
] satisfies RuleDef[]);

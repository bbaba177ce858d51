import path from "node:path";
import { HotplexError } from "../../errors.js";
import { LaunchError } from "../../process/launcher.js";
import type { AgentConnection } from "../connection.js";
import { type AgentStart, type Command, capabilities, type LaunchConfig, type Provider, type StartupFailure } from "../provider.js";
import { agentVersion } from "../version.js";
import { approvalPolicy, CodexConnection, FORK_FAILED } from "./connection.js";
import { nativeCodex } from "./executable.js";
import { THREAD_ID } from "./notifications.js";
import { rolloutFiles } from "./transcripts.js";

/** What Codex needs from the daemon's environment: its API key and endpoint settings. */
export const CODEX_ENV: readonly string[] = ["OPENAI_*", "AZURE_OPENAI_*"];

// Settings every hotplex-run Codex gets, over whatever its config.toml says: nothing
// online but the model API (no plugins, apps, updates, analytics). Constants, never
// client values.
const CONFIG_OVERRIDES = [
  "features.plugins=false",
  "features.remote_plugin=false",
  "features.apps=false",
  "features.in_app_updates=false",
  "analytics.enabled=false",
  "check_for_update_on_startup=false",
];

// With the host approving tool calls, Codex asks before what its policy does not allow
// (the thread's policy, set over the protocol: 0.171 refuses "untrusted" in its config
// and exits, so the config gets "on-request", an asking policy too), and its model may
// ask the user (request_user_input, which Codex otherwise offers only in plan mode; the
// feature is still marked unstable, hence the warning turned off).
const APPROVAL_OVERRIDES = (approvals: boolean): string[] =>
  approvals
    ? ['approval_policy="on-request"', "features.default_mode_request_user_input=true", "suppress_unstable_features_warning=true"]
    : [`approval_policy="${approvalPolicy(false)}"`];

/**
 * OpenAI Codex through `codex app-server`: one process per session, JSON-RPC on stdio,
 * a thread per conversation (resumed by id after a restart). Codex's own sandbox runs
 * only when hotplex's is off: inside hotplex's, the agent already has exactly its work
 * dir and HOME, and a nested sandbox would need namespaces the outer one withholds.
 */
export class CodexProvider implements Provider {
  readonly name = "codex";
  // No permission modes (the approval policy follows the session's approval mode), and no
  // edited input: Codex runs the command it asked about or none.
  readonly capabilities = capabilities({
    interrupt: true,
    approvals: true,
    questions: true,
    steer: true,
    fork: true,
    forkAtTurn: true,
    setModel: true,
    listModels: true,
  });
  readonly envAllowList = CODEX_ENV;
  readonly #executable: string;

  constructor(executable: string) {
    this.#executable = nativeCodex(executable);
  }

  validateConfig(config: LaunchConfig): void {
    const refuse = (field: string, why: string) => {
      throw new HotplexError("invalid_argument", `config.${field} is not supported by provider ${this.name}: ${why}`);
    };
    if (config.permissionMode) refuse("permission_mode", "Codex has no permission modes (its approvals follow the session's approval mode)");
    if (config.allowedTools.length > 0) refuse("allowed_tools", "Codex has no tool rules");
    if (config.disallowedTools.length > 0) refuse("disallowed_tools", "Codex has no tool rules");
  }

  async connect(start: AgentStart): Promise<AgentConnection> {
    if (start.config.disallowedTools.length > 0) {
      // The tenant's policy forbids tools; Codex cannot be told to, so it does not run.
      throw new LaunchError(`the tenant's policy disallows tools (${start.config.disallowedTools.join(", ")}), which provider ${this.name} cannot enforce`);
    }
    if (start.mode === "fork") {
      if (!start.forkFrom || !THREAD_ID.test(start.forkFrom)) throw new LaunchError("a fork needs the Codex thread to fork from");
      if (start.forkAt && !THREAD_ID.test(start.forkAt)) throw new LaunchError(`cannot fork at ${JSON.stringify(start.forkAt.slice(0, 100))}: not a Codex turn id`);
    }
    const codexHome = path.join(start.paths.home, ".codex");
    const tmp = path.join(start.paths.home, ".tmp");
    await start.launcher.ensureAgentDir(codexHome);
    await start.launcher.ensureAgentDir(tmp);
    const command: Command = {
      file: this.#executable,
      args: ["app-server", ...[...CONFIG_OVERRIDES, ...APPROVAL_OVERRIDES(start.config.approvals)].map((setting) => `--config=${setting}`)],
      // Its state (threads, rollouts) lives in the session's own HOME, never under /tmp,
      // where Codex turns its sandbox off.
      env: { CODEX_HOME: codexHome, TMPDIR: tmp },
    };
    return CodexConnection.open(start, command, this.capabilities);
  }

  version(): Promise<string> {
    return agentVersion(this.#executable);
  }

  transcriptFiles(providerSessionId: string, _workDir: string, home: string): string[] {
    // The thread's rollout under CODEX_HOME/sessions (the HOME's `.codex`): Codex finds a
    // copy by the thread id in its name, so a fork's HOME needs nothing else to fork it.
    return rolloutFiles(providerSessionId, home);
  }

  classifyStartupFailure(_stderr: string, fatalMessage: string | undefined): StartupFailure | undefined {
    // The parent's thread is missing from the fork's HOME: starting anew would lose it.
    if (fatalMessage?.startsWith(FORK_FAILED)) return undefined;
    if (fatalMessage?.includes("no rollout found") || fatalMessage?.includes("invalid session id")) return "resume_missing";
    return undefined;
  }
}

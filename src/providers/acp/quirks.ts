import path from "node:path";
import { type LoadGuard, prepareGeminiLoad } from "./gemini-chats.js";

/**
 * What one ACP agent needs beyond the protocol: its environment, the settings it must find
 * in its HOME, the session mode it runs in, and its known bugs. One entry per agent kind;
 * everything else about an ACP agent is the generic provider's.
 */
export interface AcpQuirks {
  /** The agent kind, e.g. "gemini" (also the key of the table). */
  readonly kind: string;
  /** Variables of the daemon's environment the agent may inherit ("PREFIX*" for prefixes). */
  readonly envAllowList: readonly string[];
  /** Constant variables the agent always gets (never client values). */
  readonly env: Readonly<Record<string, string>>;
  /** A TMPDIR of its own under the session HOME (this relative path), or none. */
  readonly tmpDir?: string;
  /**
   * A JSON settings file in the session HOME: `path` relative to HOME, `defaults` where the
   * operator's file (from the HOME template) says nothing, `forced` over whatever it says.
   */
  readonly settingsFile?: {
    readonly path: string;
    readonly defaults: Readonly<Record<string, unknown>>;
    readonly forced: Readonly<Record<string, unknown>>;
  };
  /**
   * The session mode to set after session/new or session/load when the session neither
   * asks for approvals nor names a permission mode (the agent should run its tools without
   * asking: a request it sends anyway is refused), when the agent offers it. With approvals
   * the agent keeps the mode its own settings give it.
   */
  readonly sessionMode?: string;
  /** The session modes the agent is known to offer (config.permission_mode is one); without it any mode id the agent advertises. */
  readonly modes?: readonly string[];
  /** A variable naming a file that replaces the agent's system prompt; without it a system prompt is refused. */
  readonly systemPromptFileEnv?: string;
  /** Whether session/load is trusted at all (a process restart resumes through it). */
  readonly loadSession: boolean;
  /**
   * Runs before session/load: protects the saved conversation from an agent bug, and says
   * whether there is one at all.
   */
  readonly prepareLoad?: (paths: { home: string; workDir: string; stateDir: string }, sessionId: string) => Promise<LoadGuard>;
  /**
   * The update that ends a load's history replay, for an agent that goes on replaying
   * after it answered session/load (the spec has the replay before the answer).
   */
  readonly replayEndsWith?: string;
  /** The tool's name from its call id, for an agent that puts it there; else the call's kind names it. */
  readonly toolName?: (toolCallId: string) => string | undefined;
}

// Gemini CLI's call ids are `<tool name>__<the model's call id>`.
const GEMINI_TOOL_ID = /^([A-Za-z0-9_.-]{1,100})__/;

/** The agents the generic ACP provider knows by kind. */
export const ACP_QUIRKS: Readonly<Record<string, AcpQuirks>> = {
  gemini: {
    kind: "gemini",
    envAllowList: ["GEMINI_*", "GOOGLE_*"],
    env: {
      // Otherwise gemini.js re-spawns itself as a child with a bigger heap and waits for
      // it, ignoring SIGTERM: two processes, and a stop that only SIGKILL completes.
      GEMINI_CLI_NO_RELAUNCH: "true",
      // hotplex chose the work dir; the CLI must not ask whether to trust it.
      GEMINI_CLI_TRUST_WORKSPACE: "true",
      NO_COLOR: "1",
    },
    // The CLI writes an error report into os.tmpdir() on every model API error.
    tmpDir: ".tmp",
    settingsFile: {
      path: path.join(".gemini", "settings.json"),
      // API-key auth unless the operator chose another (a set GOOGLE_GEMINI_BASE_URL would
      // otherwise select "gateway"); few retries, 5-30 s apart each (the CLI's default is 10).
      defaults: { security: { auth: { selectedType: "gemini-api-key" } }, general: { maxAttempts: 3 } },
      // Nothing online but the model API.
      forced: {
        privacy: { usageStatisticsEnabled: false },
        telemetry: { enabled: false },
        general: { enableAutoUpdate: false, enableAutoUpdateNotification: false },
      },
    },
    sessionMode: "yolo",
    // "default" asks before tools its policy does not allow, "autoEdit" only before
    // non-edit ones, "yolo" never, "plan" allows only reading.
    modes: ["default", "autoEdit", "yolo", "plan"],
    systemPromptFileEnv: "GEMINI_SYSTEM_MD",
    loadSession: true,
    prepareLoad: prepareGeminiLoad,
    // It answers session/load after the first replayed message and sends the rest after;
    // the command list comes last.
    replayEndsWith: "available_commands_update",
    toolName: (id) => GEMINI_TOOL_ID.exec(id)?.[1],
  },
  /** Any other agent that speaks ACP as the spec says. */
  generic: {
    kind: "generic",
    envAllowList: [],
    env: {},
    loadSession: true,
  },
};

/** The quirks of an agent kind; unknown kinds get the generic entry's. */
export function acpQuirks(kind: string): AcpQuirks {
  return ACP_QUIRKS[kind] ?? { ...ACP_QUIRKS.generic!, kind };
}

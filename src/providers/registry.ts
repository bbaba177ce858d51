import { HotplexError } from "../errors.js";
import { CLAUDE_CODE_ENV, ClaudeCodeProvider } from "./claude-code/provider.js";
import { AcpProvider, GEMINI_ENV } from "./acp/provider.js";
import { CODEX_ENV, CodexProvider } from "./codex/provider.js";
import { OPENCODE_ENV, OpenCodeProvider } from "./opencode/provider.js";
import { LaunchError } from "../process/launcher.js";
import { capabilities, type Provider } from "./provider.js";

/** Which providers a daemon runs, and where their executables are. */
export interface ProviderSettings {
  /** Provider names, in the order ListProviders shows them. */
  enabled: readonly string[];
  /** A provider's executable (or command) by provider name; a provider not named uses its default. */
  executables: Readonly<Record<string, string>>;
  /** The provider of a session whose config names none. */
  defaultProvider: string;
  /**
   * Agents that speak ACP, by the provider name they get: the command and its fixed
   * arguments (from the server config, never from a client). Each is run by the generic
   * ACP provider and is enabled by being named here.
   */
  acpAgents?: Readonly<Record<string, readonly [string, ...string[]]>>;
}

/** A name an operator may give an ACP agent: lower-case letters, digits and dashes, not a built-in provider's. */
export const ACP_AGENT_NAME = /^[a-z][a-z0-9-]{0,39}$/;

/** A provider hotplex knows how to run: its default executable and how to create it. */
interface ProviderFactory {
  /** The command when the config names none: the CLI installed with hotplex, else the name on PATH. */
  defaultExecutable: string;
  /** Provider.envAllowList, known before the provider exists (the daemon's allow-list is built first). */
  envAllowList: readonly string[];
  create(executable: string): Provider;
}

const FACTORIES: Record<string, ProviderFactory> = {
  "claude-code": { defaultExecutable: "claude", envAllowList: CLAUDE_CODE_ENV, create: (executable) => new ClaudeCodeProvider(executable) },
  codex: { defaultExecutable: "codex", envAllowList: CODEX_ENV, create: (executable) => new CodexProvider(executable) },
  opencode: {
    defaultExecutable: "opencode",
    envAllowList: OPENCODE_ENV,
    create: (executable) => new OpenCodeProvider({ executable }),
  },
  gemini: {
    defaultExecutable: "gemini",
    envAllowList: GEMINI_ENV,
    create: (executable) => new AcpProvider({ name: "gemini", command: [executable, "--acp"], quirks: "gemini" }),
  },
};

/** The provider a config without `provider` gets. */
export const DEFAULT_PROVIDER = "claude-code";

/** The providers of a daemon that runs only the default one. */
export const DEFAULT_PROVIDER_SETTINGS: ProviderSettings = { enabled: [DEFAULT_PROVIDER], executables: {}, defaultProvider: DEFAULT_PROVIDER };

/** Settings enabling the providers named in `executables`, each with its executable; the first is the default. */
export function providerSettings(executables: Record<string, string>, defaultProvider?: string): ProviderSettings {
  const enabled = Object.keys(executables);
  return { enabled, executables, defaultProvider: defaultProvider ?? enabled[0] ?? DEFAULT_PROVIDER };
}

/** Every provider name hotplex knows. */
export function knownProviders(): string[] {
  return Object.keys(FACTORIES);
}

/** The variables the named providers may inherit, together (for the daemon's own allow-list). */
export function providersEnvAllowList(names: readonly string[]): string[] {
  return [...new Set(names.flatMap((name) => FACTORIES[name]?.envAllowList ?? []))];
}

/** The executable name a provider runs when the config names none. */
export function defaultExecutable(name: string): string {
  return FACTORIES[name]?.defaultExecutable ?? name;
}

/**
 * The enabled providers of a daemon, by name. Unknown names are a config error, as is a
 * default provider that is not enabled.
 */
export class ProviderRegistry {
  readonly #providers = new Map<string, Provider>();
  readonly defaultProvider: string;

  constructor(providers: readonly Provider[], defaultProvider: string) {
    for (const provider of providers) this.#providers.set(provider.name, provider);
    if (!this.#providers.has(defaultProvider)) {
      throw new Error(`the default provider "${defaultProvider}" is not enabled (enabled: ${[...this.#providers.keys()].join(", ")})`);
    }
    this.defaultProvider = defaultProvider;
  }

  static fromSettings(settings: ProviderSettings): ProviderRegistry {
    const acp = settings.acpAgents ?? {};
    const names = [...new Set([...settings.enabled, ...Object.keys(acp)])];
    const providers = names.map((name) => {
      const command = Object.hasOwn(acp, name) ? acp[name] : undefined;
      if (command) {
        if (!ACP_AGENT_NAME.test(name) || FACTORIES[name]) throw new Error(`"${name}" cannot name an ACP agent (a built-in provider's name, or not [a-z][a-z0-9-]{0,39})`);
        return new AcpProvider({ name, command, quirks: "generic" });
      }
      const factory = FACTORIES[name];
      if (!factory) throw new Error(`unknown provider "${name}" (known: ${knownProviders().join(", ")})`);
      return factory.create(settings.executables[name] || factory.defaultExecutable);
    });
    return new ProviderRegistry(providers, settings.defaultProvider);
  }

  get names(): string[] {
    return [...this.#providers.keys()];
  }

  get all(): Provider[] {
    return [...this.#providers.values()];
  }

  has(name: string): boolean {
    return this.#providers.has(name);
  }

  /** The provider a config names ("" for the default); INVALID_ARGUMENT naming the enabled ones when it is not enabled. */
  get(name: string): Provider {
    const provider = this.#providers.get(name || this.defaultProvider);
    if (!provider) {
      throw new HotplexError(
        "invalid_argument",
        `config.provider ${JSON.stringify(name.slice(0, 100))} is not enabled on this daemon; enabled: ${this.names.join(", ")}`,
      );
    }
    return provider;
  }

  async close(): Promise<void> {
    await Promise.all(this.all.map((provider) => provider.close?.()));
  }
}

/**
 * Stands in for the provider of a stored session that this daemon no longer enables: the
 * session and its log stay readable, its turns fail with the reason.
 */
export function unavailableProvider(name: string): Provider {
  const refusal = `provider ${name} is not enabled on this daemon`;
  return {
    name,
    capabilities: capabilities({ resume: false }),
    envAllowList: [],
    validateConfig() {},
    connect: () => Promise.reject(new LaunchError(refusal)),
    version: () => Promise.resolve(""),
    transcriptFiles: () => [],
    classifyStartupFailure: () => undefined,
  };
}

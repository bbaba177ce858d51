// Answers the agent's permission requests and questions during `hotplex exec`: asked on
// the terminal one at a time, or answered by --approve / --deny-all, or (with neither and
// no terminal) left to another client, with the commands that answer them printed.
import { Code, ConnectError } from "@connectrpc/connect";
import { type PermissionRequested, RequestKind } from "../../../gen/hotplex/v1/interaction_pb.js";
import type { CommandContext } from "./context.js";
import { UNARY } from "./context.js";
import { codeName } from "./errors.js";
import { clip } from "./sanitize.js";

/** How requests are answered. */
export type ApprovalPolicy = "ask" | "approve" | "deny" | "wait";

type Decision = Parameters<CommandContext["clients"]["session"]["respondPermission"]>[0]["decision"];

export interface ApprovalHooks {
  /** Before a question is put on the terminal (the spinner must go, and stay away). */
  beforeAsk(): void;
  /** The terminal is free again. */
  afterAsk(): void;
  /** A line of ours, after any pending text. */
  note(line: string): void;
  /** Ctrl-C at a prompt. */
  interrupted(): boolean;
}

const MAX_TRIES = 5;

export class Approvals {
  readonly #ctx: CommandContext;
  readonly #sessionId: string;
  readonly #policy: ApprovalPolicy;
  readonly #hooks: ApprovalHooks;
  // Requests waiting for their turn at the prompt, in order; the one asked now has a controller.
  readonly #queue: PermissionRequested[] = [];
  readonly #resolved = new Set<string>();
  #current: { id: string; abort: AbortController } | undefined;
  #working: Promise<void> = Promise.resolve();

  constructor(ctx: CommandContext, sessionId: string, policy: ApprovalPolicy, hooks: ApprovalHooks) {
    this.#ctx = ctx;
    this.#sessionId = sessionId;
    this.#policy = policy;
    this.#hooks = hooks;
  }

  requested(request: PermissionRequested): void {
    this.#queue.push(request);
    if (this.#queue.length === 1 && !this.#current) this.#working = this.#drain();
  }

  /** The request was decided (by us or anyone): a prompt still open for it is withdrawn. */
  resolved(requestId: string): void {
    this.#resolved.add(requestId);
    if (this.#current?.id === requestId) this.#current.abort.abort();
  }

  /** Resolves when every queued request has been dealt with. */
  settled(): Promise<void> {
    return this.#working;
  }

  async #drain(): Promise<void> {
    for (let next = this.#queue[0]; next; next = this.#queue[0]) {
      try {
        if (!this.#resolved.has(next.requestId)) await this.#handle(next);
      } finally {
        this.#queue.shift();
      }
    }
  }

  async #handle(request: PermissionRequested): Promise<void> {
    const question = request.kind === RequestKind.QUESTION;
    switch (this.#policy) {
      case "approve":
        // A question has no answer to approve: it is declined, and the agent goes on.
        return this.#respond(request, question ? deny("no one at a terminal to answer (hotplex exec --approve)") : { case: "allow", value: { forSession: false, updatedInputJson: "" } });
      case "deny":
        return this.#respond(request, deny("denied by hotplex exec --deny-all"));
      case "wait":
        return this.#hint(request);
      case "ask": {
        const abort = new AbortController();
        this.#current = { id: request.requestId, abort };
        this.#hooks.beforeAsk();
        try {
          const decision = question ? await this.#askQuestions(request, abort.signal) : await this.#askPermission(request, abort.signal);
          if (decision) return await this.#respond(request, decision);
          if (!abort.signal.aborted && !this.#hooks.interrupted()) this.#hint(request);
        } finally {
          this.#current = undefined;
          this.#hooks.afterAsk();
        }
      }
    }
  }

  async #askPermission(request: PermissionRequested, signal: AbortSignal): Promise<Decision | undefined> {
    for (let i = 0; i < MAX_TRIES; i += 1) {
      this.#hooks.beforeAsk();
      const answer = await this.#ctx.io.ask("allow? [y]es, [n]o, [a]lways (this session), [i]nterrupt: ", signal);
      if (answer === undefined) return undefined;
      switch (answer.trim().toLowerCase()) {
        case "y":
        case "yes":
          return { case: "allow", value: { forSession: false, updatedInputJson: "" } };
        case "a":
        case "always":
          return { case: "allow", value: { forSession: true, updatedInputJson: "" } };
        case "n":
        case "no":
          return deny("");
        case "i":
        case "interrupt":
          return { case: "deny", value: { message: "", interrupt: true } };
      }
    }
    return deny("no valid answer at the terminal");
  }

  async #askQuestions(request: PermissionRequested, signal: AbortSignal): Promise<Decision | undefined> {
    const answers: Record<string, string> = {};
    for (const q of request.questions) {
      const options = q.options.map((o, i) => `  ${i + 1}. ${clip(o.label, 120)}${o.description ? ` — ${clip(o.description, 120)}` : ""}`);
      this.#hooks.beforeAsk();
      this.#hooks.note(`${clip(q.header || "question", 64)}: ${clip(q.question, 400)}${options.length ? `\n${options.join("\n")}` : ""}`);
      const hint = q.options.length ? (q.multiSelect ? "numbers, comma-separated, or text" : "a number or text") : "text";
      const answer = await this.#ctx.io.ask(`answer (${hint}; empty declines): `, signal);
      if (answer === undefined) return undefined;
      const text = answer.trim();
      if (text === "") return deny("");
      const picked = text.split(",").map((part) => q.options[Number(part.trim()) - 1]?.label);
      answers[q.id] = /^[\d,\s]+$/.test(text) && picked.every(Boolean) ? picked.join(", ") : text.slice(0, 4_096);
    }
    return { case: "answer", value: { answers } };
  }

  async #respond(request: PermissionRequested, decision: Decision): Promise<void> {
    try {
      await this.#ctx.clients.session.respondPermission({ sessionId: this.#sessionId, requestId: request.requestId, decision }, UNARY);
    } catch (reason) {
      const error = ConnectError.from(reason);
      // Someone else answered first, or the request ended: the PermissionResolved says how.
      if (error.code === Code.FailedPrecondition || error.code === Code.NotFound) return;
      this.#hooks.note(`could not answer request ${clip(request.requestId, 128)}: ${codeName(error.code)}: ${clip(error.rawMessage, 300)}`);
    }
  }

  #hint(request: PermissionRequested): void {
    const session = shellWord(this.#sessionId);
    const id = shellWord(request.requestId);
    const how =
      request.kind === RequestKind.QUESTION
        ? `the agent asks a question; answer it from a client, or decline: hotplex deny ${session} ${id}`
        : `answer from another shell: hotplex approve ${session} ${id}  (or: hotplex deny ${session} ${id}); or run exec with --approve or --deny-all`;
    this.#ctx.warn(this.#ctx.errColors.yellow(`waiting for an answer to request ${clip(request.requestId, 128)}: ${how}`));
  }
}

function deny(message: string): Decision {
  return { case: "deny", value: { message, interrupt: false } };
}

// Ids are [A-Za-z0-9._:-]; anything else is quoted so that a pasted command is safe.
function shellWord(text: string): string {
  const safe = clip(text, 256);
  return /^[A-Za-z0-9._:@/-]+$/.test(safe) ? safe : `'${safe.replaceAll("'", "'\\''")}'`;
}

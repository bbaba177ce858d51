// A spinner for the silent stretches of a turn (the model thinking, a tool running): only
// on a terminal, only at the start of a line, and erased before anything else is written.
import type { CliOutput } from "./io.js";

const FRAMES = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
const INTERVAL_MS = 80;

export class Spinner {
  readonly #out: CliOutput;
  readonly #enabled: boolean;
  #timer: NodeJS.Timeout | undefined;
  #frame = 0;
  #label = "";
  #shown = false;
  #held = false;

  constructor(out: CliOutput, enabled: boolean) {
    this.#out = out;
    this.#enabled = enabled && out.isTTY;
  }

  /** Shows the spinner with a label (the caller knows the cursor is at a line start). */
  start(label: string): void {
    if (!this.#enabled || this.#held) return;
    this.#label = label;
    if (this.#timer) return;
    this.#draw();
    this.#timer = setInterval(() => this.#draw(), INTERVAL_MS);
    // A spinner never keeps the process alive.
    this.#timer.unref();
  }

  /** Erases it; the next write lands where it was. */
  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    if (this.#shown) this.#out.write("\r\u001b[2K");
    this.#shown = false;
  }

  /** Erases it and keeps it off (a question is open on the terminal) until release(). */
  hold(): void {
    this.#held = true;
    this.stop();
  }

  release(): void {
    this.#held = false;
  }

  #draw(): void {
    this.#frame = (this.#frame + 1) % FRAMES.length;
    this.#out.write(`\r\u001b[2K${FRAMES[this.#frame]} ${this.#label}`);
    this.#shown = true;
  }
}

// Bookkeeping of the content blocks streamed with `--include-partial-messages`.
//
// With partial messages the CLI prints every block twice: live as `content_block_delta`
// stream events, then whole as an `assistant` line (before the block's
// `content_block_stop`). The parser emits the deltas and uses this record to emit only
// what the deltas missed from the whole block, so text is never duplicated. It also
// measures how long each block streamed.

/** A content block announced by `content_block_start`. */
interface StreamBlock {
  /** Block type: "text", "thinking", "tool_use", ... */
  kind: string;
  startMs: number;
  /** The text already emitted from this block's deltas. */
  streamed: string;
  /** Set once content_block_stop was seen (the block is kept until the next message). */
  stopped: boolean;
  /** Set once a whole assistant block was paired with this block. */
  matched: boolean;
}

/** A finished block: its type and how long it streamed. */
export interface StoppedBlock {
  kind: string;
  ms: number;
}

/**
 * The streamed blocks of the current API response of the main agent and of each
 * sub-agent (keyed by parent tool use id, "" for the main agent), in stream order.
 */
export class StreamBlocks {
  #blocks = new Map<string, StreamBlock>();

  /** message_start: a new API response, so forget the previous one's blocks. */
  newMessage(parent: string): void {
    const prefix = `${parent}/`;
    for (const key of this.#blocks.keys()) if (key.startsWith(prefix)) this.#blocks.delete(key);
  }

  /** content_block_start. */
  start(parent: string, index: number, kind: string, nowMs: number): void {
    const key = `${parent}/${index}`;
    this.#blocks.delete(key); // re-insert so that map order stays stream order
    this.#blocks.set(key, newBlock(kind, nowMs));
  }

  /** A text or thinking delta that was emitted. */
  delta(parent: string, index: number, kind: string, text: string, nowMs: number): void {
    const key = `${parent}/${index}`;
    let block = this.#blocks.get(key);
    if (!block) {
      // The delta came without its content_block_start: track the block from here.
      block = newBlock(kind, nowMs);
      this.#blocks.set(key, block);
    }
    block.streamed += text;
  }

  /** content_block_stop: the block's kind and streaming time, once per block. */
  stop(parent: string, index: number, nowMs: number): StoppedBlock | undefined {
    const block = this.#blocks.get(`${parent}/${index}`);
    return block ? stopBlock(block, nowMs) : undefined;
  }

  /**
   * Stops every block still open, e.g. one cut short by an interrupt (the CLI then prints
   * no content_block_stop), so that its streaming time still counts.
   */
  stopAll(nowMs: number): StoppedBlock[] {
    return [...this.#blocks.values()].flatMap((block) => stopBlock(block, nowMs) ?? []);
  }

  /**
   * The part of a whole text/thinking block (from an assistant line) that its deltas did
   * not emit. The block pairs with the first streamed block of its kind that no assistant
   * line claimed yet: the open one for the current CLI, or, if a release prints the
   * assistant line after the whole message, the one in the same position. Without partial
   * messages there is none, and the whole text is returned.
   */
  notYetStreamed(parent: string, kind: string, text: string): string {
    const prefix = `${parent}/`;
    for (const [key, block] of this.#blocks) {
      if (!key.startsWith(prefix) || block.kind !== kind || block.matched) continue;
      block.matched = true;
      // Normally the deltas spelled out the whole text (or, after an interrupt, exactly
      // the partial text the assistant line repeats). If deltas were lost, return the
      // rest; if the two disagree, anything returned would be a duplicate.
      return text.startsWith(block.streamed) ? text.slice(block.streamed.length) : "";
    }
    return text;
  }

  /** Forgets everything (a turn boundary). */
  clear(): void {
    this.#blocks.clear();
  }
}

function newBlock(kind: string, startMs: number): StreamBlock {
  return { kind, startMs, streamed: "", stopped: false, matched: false };
}

function stopBlock(block: StreamBlock, nowMs: number): StoppedBlock | undefined {
  if (block.stopped) return undefined;
  block.stopped = true;
  return { kind: block.kind, ms: Math.max(0, nowMs - block.startMs) };
}

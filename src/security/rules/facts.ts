/**
 * What a command would do, as the rules see it: every program it would run (after
 * unwrapping sudo, env, sh -c, eval, xargs, find -exec…), every file it would read,
 * write or delete, the variables it sets, and composite events such as "a download is
 * piped into a shell" that no single program shows.
 */
import type { Redirect, Word } from "./tokenizer.js";

export interface Invocation {
  /** Lower-cased base name of the program; "" when it could not be resolved. */
  program: string;
  dynamicProgram: boolean;
  /** Arguments after the program. */
  args: Word[];
  /** Wrappers it ran under, outermost first ("sudo", "env", "xargs"…). */
  via: string[];
  depth: number;
  /** What the earlier stages of its pipeline (their output is its input) include. */
  upstream: UpstreamFacts;
  /** Programs run inside its arguments' $(…) and <(…). */
  inner: Invocation[];
  redirects: Redirect[];
  /** The normalized command line, for evidence. */
  line: string;
  /**
   * The line holds something only a few rules look for (a socket path, a metadata address,
   * a bypass flag…); rules that scan every argument skip invocations without it.
   */
  hot: boolean;
}

export const HOT = /\/dev\/(tcp|udp)|169\.254|100\.100\.100\.200|fd00:ec2|metadata|0xa9fea9fe|2852039166|dangerous|yolo|bypass|danger-full|\.sock|permission-mode|approval-mode|sandbox|ask-for-approval/i;

export type AccessOp = "read" | "write" | "delete";

export interface FileAccess {
  op: AccessOp;
  /** Absolute and normalized; globs keep their wildcards. */
  path: string;
  glob: boolean;
  recursive: boolean;
  program: string;
}

export type EventKind = "download-exec" | "decode-exec" | "network-shell" | "download-then-run";

export interface Facts {
  invocations: Invocation[];
  files: FileAccess[];
  assignments: { name: string; value: string }[];
  /** Every script text parsed, nested ones included (text-level rules read these). */
  sources: string[];
  /** Inline code given to interpreters (python -c, perl -e…). */
  codes: { language: string; code: string }[];
  events: { kind: EventKind; evidence: string }[];
  downloaded: Set<string>;
  executed: string[];
  /** Bounds that were hit ("depth", "words", "scripts", "size"). */
  exceeded: Set<string>;
}

export function newFacts(): Facts {
  return { invocations: [], files: [], assignments: [], sources: [], codes: [], events: [], downloaded: new Set(), executed: [], exceeded: new Set() };
}

/**
 * What earlier stages of a pipeline include, folded as the stages are read: keeping the
 * stages themselves per invocation cost the square of a pipeline's length (a 20,000-stage
 * pipeline took seconds, found by the hostile-input test).
 */
export interface UpstreamFacts {
  /** A downloader (curl, wget…). */
  downloader: boolean;
  /** A decoder (base64 -d, xxd -r, gzip -d…). */
  decoder: boolean;
  /** A network client (nc, socat, openssl s_client…). */
  network: boolean;
  /** A reader of a secret (a key or token file, the whole environment). */
  secretReader: boolean;
}

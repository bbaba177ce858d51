/** The built-in sets, by name. */
import type { Rule } from "../rule.js";
import { CREDENTIALS } from "./credentials.js";
import { DESTRUCTIVE } from "./destructive.js";
import { DISK } from "./disk.js";
import { FORK_BOMB } from "./fork-bomb.js";
import { PERSISTENCE } from "./persistence.js";
import { PRIVILEGE } from "./privilege.js";
import { REMOTE_EXEC } from "./remote-exec.js";
import { SAFEGUARDS } from "./safeguards.js";

export const SETS: Readonly<Record<string, readonly Rule[]>> = {
  destructive: DESTRUCTIVE,
  disk: DISK,
  "fork-bomb": FORK_BOMB,
  "remote-exec": REMOTE_EXEC,
  credentials: CREDENTIALS,
  privilege: PRIVILEGE,
  persistence: PERSISTENCE,
  safeguards: SAFEGUARDS,
};

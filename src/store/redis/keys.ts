/**
 * The Redis keys of one session. Every key of a session carries the same hash tag (the
 * part in braces), so on Redis Cluster they all live on one shard and one script may
 * read and write them together (the fenced append checks the lease and writes the log).
 */
export interface SessionKeys {
  /** The event log: a stream whose entry ids are `<seq>-0`. */
  log: string;
  /** The owner's lease: `<epoch>:<node>:<nonce>`, with a TTL. */
  lease: string;
  /** The last epoch handed out (INCR): it only grows, across owners. */
  epoch: string;
  /** The session's registry entry. */
  meta: string;
  /** The encoded bytes of the events the log holds (kept by the commit and trim scripts). */
  bytes: string;
}

/** Store keys are `<tenant>/<session id>`, both validated names; nothing else may form a tag. */
const STORE_KEY = /^[A-Za-z0-9._:-]{1,128}\/[A-Za-z0-9._:-]{1,128}$/;

export function sessionKeys(prefix: string, storeKey: string): SessionKeys {
  // A brace in the key would end the hash tag early (or start another): the session's
  // keys could land on different shards, and a crafted key could share another's tag.
  if (!STORE_KEY.test(storeKey)) throw new RangeError(`not a session store key: ${JSON.stringify(storeKey.slice(0, 300))}`);
  const tag = `${prefix}{${storeKey}}`;
  return { log: `${tag}:log`, lease: `${tag}:lease`, epoch: `${tag}:epoch`, meta: `${tag}:meta`, bytes: `${tag}:bytes` };
}

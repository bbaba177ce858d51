import type Database from "better-sqlite3";

// The events table is clustered on (session_key, seq): appends and replays walk one
// b-tree, with no separate rowid table.
// Each entry moves the schema one version up; the index + 1 is the version it creates.
// Never edit an entry that has shipped: add a new one.
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE sessions (
     key TEXT PRIMARY KEY,
     tenant TEXT NOT NULL,
     session_id TEXT NOT NULL,
     incarnation TEXT NOT NULL,
     provider TEXT NOT NULL,
     provider_session_id TEXT NOT NULL,
     work_dir TEXT NOT NULL,
     config BLOB NOT NULL,
     status INTEGER NOT NULL,
     created_ms INTEGER NOT NULL,
     last_active_ms INTEGER NOT NULL,
     stats BLOB NOT NULL,
     pgid INTEGER NOT NULL,
     agent_command TEXT NOT NULL,
     has_conversation INTEGER NOT NULL,
     current_turn_id TEXT NOT NULL,
     last_seq INTEGER NOT NULL
   );
   CREATE TABLE events (
     session_key TEXT NOT NULL,
     seq INTEGER NOT NULL,
     time_ms INTEGER NOT NULL,
     size INTEGER NOT NULL,
     payload BLOB NOT NULL,
     PRIMARY KEY (session_key, seq)
   ) WITHOUT ROWID;
   CREATE INDEX events_by_time ON events (time_ms);`,
  // Every append paid a second b-tree insert for this index (about a third of the store's
  // cost per event); age retention now cuts each session's oldest prefix by seq instead.
  `DROP INDEX events_by_time;`,
  // The audit log: admin actions and refusals, newest kept (see SqliteStore.appendAudit).
  `CREATE TABLE audit (
     id INTEGER PRIMARY KEY,
     time_ms INTEGER NOT NULL,
     kind TEXT NOT NULL,
     principal TEXT NOT NULL,
     tenant TEXT NOT NULL,
     session_id TEXT NOT NULL,
     method TEXT NOT NULL,
     detail TEXT NOT NULL
   );`,
  // The session's folded interactive state (SessionRecord.extras).
  `ALTER TABLE sessions ADD COLUMN extras TEXT NOT NULL DEFAULT '';`,
];

/** The schema version this build writes. */
export const SCHEMA_VERSION = MIGRATIONS.length;

/** Brings the database to SCHEMA_VERSION; refuses a database from a newer hotplex. */
export function migrate(db: Database.Database): void {
  const version = db.pragma("user_version", { simple: true }) as number;
  if (version > SCHEMA_VERSION) {
    throw new Error(`its schema version ${version} is newer than this hotplex supports (${SCHEMA_VERSION}); upgrade hotplex`);
  }
  for (let next = version; next < SCHEMA_VERSION; next += 1) {
    db.transaction(() => {
      db.exec(MIGRATIONS[next] ?? "");
      db.pragma(`user_version = ${next + 1}`);
    })();
  }
}

// What each failure prints and how the CLI exits: the Connect code, a one-line hint, and
// the documented exit code; plus where the address and the token come from.
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashToken } from "../../src/security/credentials.js";
import { startTestDaemon, type TestDaemon, testToken } from "../harness.js";
import { cli, cliProcess } from "./cli-io.js";

const CLIENT = testToken("client");
const READER = testToken("reader");
const ADMIN = testToken("admin");

let daemon: TestDaemon;
let dir: string;
let deadAddr: string;
const addr = () => ["--addr", daemon.server.url];

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), "hotplex-cli-errors-"));
  daemon = await startTestDaemon({
    credentials: [
      { name: "client", tenant: "default", roles: ["client"], tokenSha256: hashToken(CLIENT) },
      { name: "reader", tenant: "default", roles: ["reader"], tokenSha256: hashToken(READER) },
      { name: "ops", tenant: "", roles: ["admin"], tokenSha256: hashToken(ADMIN) },
    ],
  });
  // A port nothing listens on.
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  deadAddr = `127.0.0.1:${(probe.address() as { port: number }).port}`;
  await new Promise((resolve) => probe.close(resolve));
});
afterAll(async () => {
  await daemon?.close();
  rmSync(dir, { recursive: true, force: true });
});

function file(name: string, text: string, mode = 0o600): string {
  const p = path.join(dir, name);
  writeFileSync(p, text);
  chmodSync(p, mode);
  return p;
}

describe("exit codes and hints", () => {
  it("exits 4 for a missing or wrong token, with the hint to pass one", async () => {
    for (const argv of [[], ["--token", "wrong-token-0123456789"]]) {
      const { code, err, out } = await cli([...addr(), ...argv, "sessions"]);
      expect(code).toBe(4);
      expect(out).toBe("");
      expect(err).toMatch(/^error: unauthenticated: .+\nhint: pass --token or --token-file, or set HOTPLEX_TOKEN\n$/);
    }
  });

  it("exits 4 when the credential's role may not do it, naming the permission", async () => {
    const reader = await cli([...addr(), "--token", READER, "exec", "s1", "hi"]);
    expect(reader.code).toBe(4);
    expect(reader.err).toMatch(/^error: permission_denied: .*may not call Execute/);
    const notAdmin = await cli([...addr(), "--token", CLIENT, "admin", "info"]);
    expect(notAdmin.code).toBe(4);
    expect(notAdmin.err).toContain("permission_denied");
  });

  it("exits 3 when nothing listens, asking whether hotplexd runs there", async () => {
    const { code, err } = await cli(["--addr", deadAddr, "sessions"]);
    expect(code).toBe(3);
    expect(err).toMatch(/^error: unavailable: .*ECONNREFUSED.*\nhint: is hotplexd running at http:\/\/127\.0\.0\.1:\d+\? /);
    const tail = await cli(["--addr", deadAddr, "tail", "s", "--follow", "--retries", "1"]);
    expect(tail.code).toBe(3);
    expect(tail.err).toContain("retrying after seq 0");
  });

  it("exits 5 for an unknown session, whatever the command", async () => {
    for (const argv of [["snapshot", "nope"], ["stats", "nope"], ["stop", "nope"], ["interrupt", "nope"], ["delete", "nope"], ["tail", "nope"], ["approve", "nope", "req-1"]]) {
      const { code, err } = await cli([...addr(), "--token", CLIENT, ...argv]);
      expect(code, argv.join(" ")).toBe(5);
      expect(err).toMatch(/^error: not_found: .+\nhint: check the id/);
    }
  });

  it("exits 2 for an invalid argument the daemon names, printing its message", async () => {
    const { code, err } = await cli([...addr(), "--token", CLIENT, "exec", "bad id!", "hi"]);
    expect(code).toBe(2);
    expect(err).toMatch(/^error: invalid_argument: .*session_id/);
  });

  it("reads a flag-like prompt as an option unless it follows --, then sends it as text", async () => {
    const flagLike = await cli([...addr(), "--token", CLIENT, "exec", "s", "--x=1"]);
    expect(flagLike.code).toBe(2);
    expect(flagLike.err).toMatch(/unknown option '--x=1'/);
    const asText = await cli([...addr(), "--token", CLIENT, "exec", "--json", "flag-like", "--", "--x=1"]);
    expect(asText.code).toBe(0);
    expect(asText.out).toContain("--x=1");
  });

  it.each([
    ["an unknown command", ["bogus"], /unknown command 'bogus'/],
    ["an unknown option", ["sessions", "--bogus"], /unknown option '--bogus'/],
    ["a missing argument", ["approve", "s"], /missing required argument 'request-id'/],
    ["a seq that is not a number", ["tail", "s", "--after", "abc"], /--after.*must be a whole number/],
    ["a negative seq", ["tail", "s", "--after", "-1"], /whole number/],
    ["a seq past 2^64", ["tail", "s", "--after", "18446744073709551616"], /whole number/],
    ["an address that is not http", ["--addr", "ftp://host", "sessions"], /must use http:\/\/ or https:\/\//],
    ["an address with credentials", ["--addr", "http://user:pw@host:1", "sessions"], /must not hold credentials/],
    ["both --token and --token-file", ["--token", CLIENT, "--token-file", "/nonexistent", "sessions"], /not both/],
    ["a token file that does not exist", ["--token-file", path.join(tmpdir(), "hotplex-no-such-token"), "sessions"], /cannot read token file .*ENOENT/],
    ["a token with a newline inside", ["--token", "abc\ndef-0123456789", "sessions"], /whitespace or control characters/],
    ["a bare admin command", ["admin"], /Usage: hotplex admin/],
  ])("exits 2 for %s", async (_name, argv, message) => {
    const { code, out, err } = await cli([...addr(), ...argv]);
    expect(code).toBe(2);
    expect(out + err).toMatch(message);
  });

  it("documents the exit codes in --help (exit 0)", async () => {
    const { code, out } = await cli(["--help"]);
    expect(code).toBe(0);
    for (const line of [/0 +ok/, /1 +the turn failed/, /2 +usage/, /3 +the daemon is unreachable/, /4 +unauthenticated or permission denied/, /5 +not found/, /130 +interrupted by Ctrl-C/]) expect(out).toMatch(line);
    expect(out).toMatch(/HOTPLEX_ADDR/);
    expect((await cli(["--version"])).code).toBe(0);
  });

  it("exits with the same codes as its own process", async () => {
    const usage = cliProcess(["bogus"]);
    expect(await usage.exit).toBe(2);
    expect(usage.err()).toContain("unknown command 'bogus'");
    const down = cliProcess(["sessions"], { HOTPLEX_ADDR: deadAddr });
    expect(await down.exit).toBe(3);
    expect(down.err()).toContain(`is hotplexd running at http://${deadAddr}?`);
  });
});

describe("address and token: flag > env > config file > default", () => {
  it("reads addr and token-file from the config file named by HOTPLEX_CLI_CONFIG", async () => {
    const token = file("token", `${CLIENT}\n`);
    const config = file("cli.yaml", `addr: ${daemon.server.url}\ntoken-file: ${path.basename(token)}\n`);
    const { code, err } = await cli(["sessions"], { env: { HOTPLEX_CLI_CONFIG: config } });
    expect(err).toBe("");
    expect(code).toBe(0);
  });

  it("lets the environment override the file, and flags the environment", async () => {
    const config = file("cli2.yaml", `addr: ${deadAddr}\ntoken: wrong-token-0123456789\n`);
    // File alone: the dead address.
    expect((await cli(["sessions"], { env: { HOTPLEX_CLI_CONFIG: config } })).code).toBe(3);
    // Env over file: the daemon, but the file's wrong token.
    expect((await cli(["sessions"], { env: { HOTPLEX_CLI_CONFIG: config, HOTPLEX_ADDR: daemon.server.url } })).code).toBe(4);
    // Env token over the file's.
    expect((await cli(["sessions"], { env: { HOTPLEX_CLI_CONFIG: config, HOTPLEX_ADDR: daemon.server.url, HOTPLEX_TOKEN: CLIENT } })).code).toBe(0);
    // Flags over env.
    const flags = await cli(["--addr", daemon.server.url, "--token-file", file("t2", CLIENT), "sessions"], { env: { HOTPLEX_CLI_CONFIG: config, HOTPLEX_ADDR: deadAddr, HOTPLEX_TOKEN: "wrong-token-0123456789" } });
    expect(flags.code).toBe(0);
  });

  it("warns when the config file holds a token others can read", async () => {
    const config = file("open.yaml", `addr: ${daemon.server.url}\ntoken: ${CLIENT}\n`, 0o644);
    const { code, err } = await cli(["sessions"], { env: { HOTPLEX_CLI_CONFIG: config } });
    expect(code).toBe(0);
    expect(err).toMatch(/warning: config file .* holds a token and others may read it/);
  });

  it.each([
    ["an unknown key, with its line", "addr: http://x\nbogus: 1\n", /line 2: unknown key "bogus" \(known: addr, token, token-file\)/],
    ["a value that is not a string", "addr: [1, 2]\n", /line 1: addr must be a non-empty string/],
    ["broken YAML, with its line", "addr: http://x\n  - : :\n\tfoo", /line \d+: /],
    ["a list instead of a mapping", "- addr\n", /expected a mapping/],
    ["a duplicate key", "addr: a\naddr: b\n", /line \d+: .*(unique|duplicate)/i],
  ])("refuses a config file with %s (exit 2)", async (_name, text, message) => {
    const config = file("bad.yaml", text);
    const { code, err } = await cli(["sessions"], { env: { HOTPLEX_CLI_CONFIG: config } });
    expect(code).toBe(2);
    expect(err).toMatch(message);
  });

  it("refuses a config file named by HOTPLEX_CLI_CONFIG that does not exist, and ignores a missing default one", async () => {
    const missing = await cli(["--addr", daemon.server.url, "sessions"], { env: { HOTPLEX_CLI_CONFIG: path.join(dir, "absent.yaml") } });
    expect(missing.code).toBe(2);
    expect(missing.err).toMatch(/cannot read config file .*absent\.yaml: ENOENT/);
    const home = mkdtempSync(path.join(tmpdir(), "hotplex-cli-home-"));
    try {
      const io = await cli(["--addr", daemon.server.url, "--token", CLIENT, "sessions"], { env: { XDG_CONFIG_HOME: home } });
      expect(io.code).toBe(0);
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });
});

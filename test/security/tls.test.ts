// The daemon's TLS listener: ALPN (h2 and http/1.1) for Connect and gRPC, no plaintext on
// the TLS port, client certificates verified against the configured CA and mapped to a
// principal, and a deadline for the TLS handshake.
import { execFileSync } from "node:child_process";
import { X509Certificate, randomInt } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import type net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import https from "node:https";
import tls from "node:tls";
import { type Client, Code, ConnectError, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TurnOutcome } from "../../gen/hotplex/v1/event_pb.js";
import { SessionService } from "../../gen/hotplex/v1/session_service_pb.js";
import { Observability } from "../../src/observability/observability.js";
import { hashToken } from "../../src/security/credentials.js";
import { pino } from "pino";
import { executeEvents, startTestDaemon, type TestDaemon, testToken, textOf, turnEndOf } from "../harness.js";
import { closedByServer, connect, exchange } from "./raw-http.js";

const TOKEN = testToken("tls");

/** A key and the certificate for it, PEM. */
interface Pair {
  cert: Buffer;
  key: Buffer;
}

interface Pki {
  ca: Buffer;
  server: Pair;
  /** Signed by `ca`, registered as the credential "cert-client". */
  client: Pair;
  /** Signed by `ca`, registered nowhere. */
  stranger: Pair;
  /** Signed by another CA the daemon does not trust. */
  untrusted: Pair;
}

const DN_CONFIG = "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\n";
const CA_EXTENSIONS = "basicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\nsubjectKeyIdentifier = hash\n";
const SERVER_EXTENSIONS =
  "basicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature\nextendedKeyUsage = serverAuth\nsubjectAltName = IP:127.0.0.1,DNS:localhost\n";
const CLIENT_EXTENSIONS = "basicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature\nextendedKeyUsage = clientAuth\n";

function openssl(dir: string, args: string[]): void {
  execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
}

/** A self-signed CA (EC P-256) in `<name>.pem` and `<name>.key`. */
function makeCa(dir: string, name: string, commonName: string): void {
  writeFileSync(path.join(dir, `${name}.cnf`), `${DN_CONFIG}CN = ${commonName}\n`);
  writeFileSync(path.join(dir, `${name}.ext`), CA_EXTENSIONS);
  openssl(dir, ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", `${name}.key`]);
  openssl(dir, ["req", "-new", "-key", `${name}.key`, "-config", `${name}.cnf`, "-out", `${name}.csr`]);
  openssl(dir, [
    "x509", "-req", "-in", `${name}.csr`, "-signkey", `${name}.key`, "-days", "2", "-sha256",
    "-set_serial", String(randomInt(1, 2 ** 47)), "-extfile", `${name}.ext`, "-out", `${name}.pem`,
  ]);
}

/** A leaf certificate signed by the CA `ca`, in `<name>.pem` and `<name>.key`. */
function makeLeaf(dir: string, name: string, ca: string, commonName: string, extensions: string): Pair {
  writeFileSync(path.join(dir, `${name}.cnf`), `${DN_CONFIG}CN = ${commonName}\n`);
  writeFileSync(path.join(dir, `${name}.ext`), extensions);
  openssl(dir, ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", `${name}.key`]);
  openssl(dir, ["req", "-new", "-key", `${name}.key`, "-config", `${name}.cnf`, "-out", `${name}.csr`]);
  openssl(dir, [
    "x509", "-req", "-in", `${name}.csr`, "-CA", `${ca}.pem`, "-CAkey", `${ca}.key`, "-days", "2", "-sha256",
    "-set_serial", String(randomInt(1, 2 ** 47)), "-extfile", `${name}.ext`, "-out", `${name}.pem`,
  ]);
  return { cert: readFileSync(path.join(dir, `${name}.pem`)), key: readFileSync(path.join(dir, `${name}.key`)) };
}

function makePki(dir: string): Pki {
  makeCa(dir, "ca", "hotplex test CA");
  makeCa(dir, "other-ca", "hotplex untrusted test CA");
  return {
    ca: readFileSync(path.join(dir, "ca.pem")),
    server: makeLeaf(dir, "server", "ca", "127.0.0.1", SERVER_EXTENSIONS),
    client: makeLeaf(dir, "client", "ca", "cert-client", CLIENT_EXTENSIONS),
    stranger: makeLeaf(dir, "stranger", "ca", "stranger", CLIENT_EXTENSIONS),
    untrusted: makeLeaf(dir, "untrusted", "other-ca", "cert-client", CLIENT_EXTENSIONS),
  };
}

/** A certificate's SHA-256 fingerprint as node prints it (upper case, colons). */
function fingerprintOf(pem: Buffer): string {
  return new X509Certificate(pem).fingerprint256;
}

type Flavor = "connect-h1" | "connect-h2" | "grpc";
const FLAVORS: Flavor[] = ["connect-h1", "connect-h2", "grpc"];

interface ClientOptions {
  ca: Buffer;
  /** A client certificate to present. */
  identity?: Pair;
  token?: string;
}

/** A transport to the daemon's TLS port that trusts `ca` and presents `identity`, if given. */
function tlsTransport(port: number, flavor: Flavor, options: ClientOptions): Transport {
  const baseUrl = `https://127.0.0.1:${port}`;
  const nodeOptions = { ca: options.ca, ...(options.identity ? { cert: options.identity.cert, key: options.identity.key } : {}) };
  const bearer: Interceptor = (next) => (req) => {
    req.header.set("authorization", `Bearer ${options.token}`);
    return next(req);
  };
  const interceptors = options.token ? [bearer] : [];
  switch (flavor) {
    case "connect-h1":
      return createConnectTransport({ baseUrl, httpVersion: "1.1", nodeOptions, interceptors });
    case "connect-h2":
      return createConnectTransport({ baseUrl, httpVersion: "2", nodeOptions, interceptors });
    case "grpc":
      return createGrpcTransport({ baseUrl, nodeOptions, interceptors });
  }
}

function tlsClient(port: number, flavor: Flavor, options: ClientOptions): Client<typeof SessionService> {
  return createClient(SessionService, tlsTransport(port, flavor, options));
}

/** Completes a TLS handshake offering `protocols` and returns the protocol the server chose. */
function negotiatedAlpn(port: number, ca: Buffer, protocols: string[]): Promise<string | false | null> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: "127.0.0.1", port, ca, ALPNProtocols: protocols });
    socket.once("secureConnect", () => {
      const chosen = socket.alpnProtocol;
      socket.destroy();
      resolve(chosen);
    });
    socket.once("error", reject);
  });
}

/** The Connect code a call fails with; fails the test when the call succeeds. */
async function codeOf(call: Promise<unknown>): Promise<Code> {
  try {
    await call;
  } catch (error) {
    return ConnectError.from(error).code;
  }
  throw new Error("the call succeeded");
}

/** Resolves with how long the server took to close `socket`, or rejects after `timeoutMs`. */
async function msUntilClosed(socket: net.Socket, timeoutMs: number): Promise<number> {
  const start = performance.now();
  await closedByServer(socket, timeoutMs);
  return performance.now() - start;
}

let dir: string;
let pki: Pki;
const daemons: TestDaemon[] = [];

async function startTlsDaemon(options: Parameters<typeof startTestDaemon>[0]): Promise<TestDaemon> {
  const daemon = await startTestDaemon(options);
  daemons.push(daemon);
  return daemon;
}

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), "hotplex-tls-"));
  pki = makePki(dir);
});

afterAll(async () => {
  await Promise.all(daemons.map((daemon) => daemon.close()));
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("TLS with bearer tokens", () => {
  let daemon: TestDaemon;
  let port: number;
  beforeAll(async () => {
    daemon = await startTlsDaemon({
      tls: { cert: pki.server.cert, key: pki.server.key },
      credentials: [{ name: "t", tenant: "default", roles: ["client"], tokenSha256: hashToken(TOKEN) }],
    });
    port = daemon.server.port;
  });

  it("negotiates h2 by ALPN when offered, and http/1.1 when only that is offered", async () => {
    expect(await negotiatedAlpn(port, pki.ca, ["h2", "http/1.1"])).toBe("h2");
    expect(await negotiatedAlpn(port, pki.ca, ["h2"])).toBe("h2");
    expect(await negotiatedAlpn(port, pki.ca, ["http/1.1"])).toBe("http/1.1");
  });

  it("refuses a client that does not trust the server's CA", async () => {
    const noCa = createClient(SessionService, createConnectTransport({ baseUrl: `https://127.0.0.1:${port}`, httpVersion: "1.1" }));
    const error = await noCa.listSessions({}, { headers: { authorization: `Bearer ${TOKEN}` } }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConnectError);
    expect(String((error as ConnectError).cause ?? error)).toMatch(/certificate/i);
  });

  it.each(FLAVORS)("serves Execute, GetSnapshot and ListSessions over %s", async (flavor) => {
    const client = tlsClient(port, flavor, { ca: pki.ca, token: TOKEN });
    const sessionId = `tls-${flavor}`;
    const events = await executeEvents(client.execute({ sessionId, prompt: `hello over ${flavor}` }));
    expect(textOf(events)).toBe(`echo: hello over ${flavor}`);
    expect(turnEndOf(events).outcome).toBe(TurnOutcome.COMPLETED);
    const snapshot = await client.getSnapshot({ sessionId });
    expect(snapshot.session?.sessionId).toBe(sessionId);
    // The turn's end, then the StatusChanged (READY) logged right after it.
    expect(snapshot.lastSeq).toBe((events.at(-1)?.seq ?? 0n) + 1n);
    const listed = await client.listSessions({});
    expect(listed.sessions.map((s) => s.sessionId)).toContain(sessionId);
  });

  it("refuses a call without a token over TLS", async () => {
    for (const flavor of FLAVORS) {
      expect(await codeOf(tlsClient(port, flavor, { ca: pki.ca }).listSessions({}))).toBe(Code.Unauthenticated);
    }
  });

  it("does not serve plaintext HTTP on the TLS port, and goes on serving TLS", async () => {
    const plainUrl = `http://127.0.0.1:${port}`;
    const request =
      "POST /hotplex.v1.SessionService/ListSessions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" +
      `Authorization: Bearer ${TOKEN}\r\nContent-Length: 2\r\n\r\n{}`;
    const raw = await exchange(plainUrl, request, 5_000);
    // The server closed the connection (before our timeout) and sent nothing back: not
    // an HTTP response, not even a TLS alert.
    expect(raw).toEqual({ response: "", closed: true });
    // An h2c (prior knowledge) client fares no better.
    const h2c = await exchange(plainUrl, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 5_000);
    expect(h2c).toEqual({ response: "", closed: true });
    // Nor do real clients speaking http:// to the port: their calls fail in the transport
    // (HTTP/1.1: "socket hang up", ABORTED; HTTP/2: the stream is cancelled, CANCELED),
    // with no status from the server.
    for (const httpVersion of ["1.1", "2"] as const) {
      const plain = createClient(SessionService, createConnectTransport({ baseUrl: plainUrl, httpVersion }));
      const call = plain.listSessions({}, { headers: { authorization: `Bearer ${TOKEN}` } });
      expect([Code.Aborted, Code.Canceled, Code.Unavailable]).toContain(await codeOf(call));
    }
    // The daemon still serves TLS clients, on every protocol.
    for (const flavor of FLAVORS) {
      const client = tlsClient(port, flavor, { ca: pki.ca, token: TOKEN });
      const sessionId = `after-plaintext-${flavor}`;
      const events = await executeEvents(client.execute({ sessionId, prompt: "still serving" }));
      expect(textOf(events)).toBe("echo: still serving");
      expect((await client.listSessions({})).sessions.map((s) => s.sessionId)).toContain(sessionId);
    }
  });
});

describe("TLS with client certificates", () => {
  let daemon: TestDaemon;
  let port: number;
  beforeAll(async () => {
    daemon = await startTlsDaemon({
      tls: { cert: pki.server.cert, key: pki.server.key, clientCa: pki.ca },
      credentials: [
        { name: "t", tenant: "default", roles: ["client"], tokenSha256: hashToken(TOKEN) },
        { name: "cert-client", tenant: "acme", roles: ["client"], clientCertSha256: fingerprintOf(pki.client.cert) },
        // The untrusted certificate's fingerprint is registered too: only a certificate the
        // client CA signed may stand for a principal, whatever its fingerprint.
        { name: "rogue", tenant: "acme", roles: ["client"], clientCertSha256: fingerprintOf(pki.untrusted.cert) },
      ],
    });
    port = daemon.server.port;
  });

  it.each(FLAVORS)("authenticates a verified client certificate over %s, as its tenant's principal", async (flavor) => {
    const client = tlsClient(port, flavor, { ca: pki.ca, identity: pki.client });
    const sessionId = `acme-${flavor}`;
    const events = await executeEvents(client.execute({ sessionId, prompt: `hello from acme over ${flavor}` }));
    expect(textOf(events)).toBe(`echo: hello from acme over ${flavor}`);
    expect(turnEndOf(events).outcome).toBe(TurnOutcome.COMPLETED);
    expect((await client.getSnapshot({ sessionId })).session?.sessionId).toBe(sessionId);
    expect((await client.listSessions({})).sessions.map((s) => s.sessionId)).toContain(sessionId);

    // A bearer-token client of the tenant "default" sees nothing of acme's session.
    const other = tlsClient(port, flavor, { ca: pki.ca, token: TOKEN });
    expect((await other.listSessions({})).sessions).toEqual([]);
    expect(await codeOf(other.getSnapshot({ sessionId }))).toBe(Code.NotFound);
  });

  it("shows a session made over one protocol to the same certificate over the others", async () => {
    const sessionId = "acme-shared";
    await executeEvents(tlsClient(port, "grpc", { ca: pki.ca, identity: pki.client }).execute({ sessionId, prompt: "one" }));
    for (const flavor of FLAVORS) {
      const client = tlsClient(port, flavor, { ca: pki.ca, identity: pki.client });
      const ids = (await client.listSessions({})).sessions.map((s) => s.sessionId);
      expect(ids).toContain(sessionId);
      // Only acme's sessions: none of the tenant "default" or of refused callers.
      for (const id of ids) expect(id).toMatch(/^acme-/);
      expect((await client.getSnapshot({ sessionId })).session?.sessionId).toBe(sessionId);
    }
  });

  it("completes the handshake without a client certificate, and refuses the call as UNAUTHENTICATED", async () => {
    expect(await negotiatedAlpn(port, pki.ca, ["h2", "http/1.1"])).toBe("h2");
    for (const flavor of FLAVORS) {
      const error = await tlsClient(port, flavor, { ca: pki.ca }).listSessions({}).catch((e: unknown) => e);
      expect(ConnectError.from(error).code).toBe(Code.Unauthenticated);
      expect(ConnectError.from(error).rawMessage).toMatch(/requires a credential/);
    }
  });

  // The listener requests certificates without rejecting unverified ones at the TLS
  // layer: the connection is accepted and served, and the call is refused by the
  // authentication step, because an unverified certificate proves no identity.
  it("serves the connection of an untrusted-CA certificate, but refuses its calls as UNAUTHENTICATED", async () => {
    for (const flavor of FLAVORS) {
      const error = await tlsClient(port, flavor, { ca: pki.ca, identity: pki.untrusted }).listSessions({}).catch((e: unknown) => e);
      expect(ConnectError.from(error).code).toBe(Code.Unauthenticated);
      // No identity at all: the certificate is not even looked up in the table.
      expect(ConnectError.from(error).rawMessage).toMatch(/requires a credential/);
      const execute = executeEvents(
        tlsClient(port, flavor, { ca: pki.ca, identity: pki.untrusted }).execute({ sessionId: `rogue-${flavor}`, prompt: "hi" }),
      );
      expect(await codeOf(execute)).toBe(Code.Unauthenticated);
    }
    const acme = tlsClient(port, "connect-h2", { ca: pki.ca, identity: pki.client });
    expect((await acme.listSessions({})).sessions.map((s) => s.sessionId)).not.toContain("rogue-connect-h1");
  });

  it("refuses a certificate the client CA signed that no credential names", async () => {
    for (const flavor of FLAVORS) {
      const error = await tlsClient(port, flavor, { ca: pki.ca, identity: pki.stranger }).listSessions({}).catch((e: unknown) => e);
      expect(ConnectError.from(error).code).toBe(Code.Unauthenticated);
      expect(ConnectError.from(error).rawMessage).toMatch(/not valid/);
    }
  });

  it("lets a bearer token take precedence over the client certificate", async () => {
    const both = tlsClient(port, "grpc", { ca: pki.ca, identity: pki.client, token: TOKEN });
    expect((await both.listSessions({})).sessions).toEqual([]);
  });
});

describe("TLS connection deadlines", () => {
  let daemon: TestDaemon;
  let port: number;
  beforeAll(async () => {
    daemon = await startTlsDaemon({
      tls: { cert: pki.server.cert, key: pki.server.key },
      credentials: [{ name: "t", tenant: "default", roles: ["client"], tokenSha256: hashToken(TOKEN) }],
      connectionLimits: {
        handshakeTimeoutMs: 300,
        headersTimeoutMs: 1_000,
        requestTimeoutMs: 2_000,
        idleTimeoutMs: 2_000,
        maxConnections: 100,
        maxStreamsPerConnection: 100,
      },
    });
    port = daemon.server.port;
  });

  it("disconnects a client that never starts the TLS handshake", async () => {
    const socket = await connect(`http://127.0.0.1:${port}`);
    const ms = await msUntilClosed(socket, 5_000);
    expect(ms).toBeGreaterThanOrEqual(200);
    expect(ms).toBeLessThan(3_000);
  });

  it("disconnects a client that stalls in the middle of its ClientHello", async () => {
    const socket = await connect(`http://127.0.0.1:${port}`);
    // A handshake record header announcing 512 bytes, and only the first few of them.
    socket.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01]));
    const ms = await msUntilClosed(socket, 5_000);
    expect(ms).toBeLessThan(3_000);
  });

  it.each([["http/1.1"], ["h2"]])("disconnects a client that completes the handshake (%s) and sends no request", async (protocol) => {
    const socket = tls.connect({ host: "127.0.0.1", port, ca: pki.ca, ALPNProtocols: [protocol] });
    await new Promise<void>((resolve, reject) => {
      socket.once("secureConnect", () => resolve());
      socket.once("error", reject);
    });
    expect(socket.alpnProtocol).toBe(protocol);
    // HTTP/1.1: the headers deadline (1 s); HTTP/2: the idle deadline (2 s) and a GOAWAY.
    await msUntilClosed(socket, 6_000);
  });

  it("still serves TLS clients after cutting those connections", async () => {
    for (const flavor of FLAVORS) {
      const client = tlsClient(port, flavor, { ca: pki.ca, token: TOKEN });
      const events = await executeEvents(client.execute({ sessionId: `after-${flavor}`, prompt: "still here" }));
      expect(textOf(events)).toBe("echo: still here");
    }
  });
});

/** GET /metrics over TLS: its status, presenting `identity` (and `token`) when given. */
function metricsStatus(port: number, options: ClientOptions): Promise<number> {
  return new Promise((resolve, reject) => {
    const request = https.request(
      {
        host: "127.0.0.1",
        port,
        path: "/metrics",
        ca: options.ca,
        ...(options.identity ? { cert: options.identity.cert, key: options.identity.key } : {}),
        headers: options.token ? { authorization: `Bearer ${options.token}` } : {},
        agent: false,
      },
      (response) => {
        response.resume();
        response.once("end", () => resolve(response.statusCode ?? 0));
      },
    );
    request.once("error", reject);
    request.end();
  });
}

describe("TLS client certificates on /metrics", () => {
  it("lets a verified admin certificate read /metrics, and no other certificate or caller", async () => {
    const observability = new Observability({ metrics: true, logger: pino({ level: "silent" }) });
    const daemon = await startTlsDaemon({
      tls: { cert: pki.server.cert, key: pki.server.key, clientCa: pki.ca },
      credentials: [
        { name: "ops", tenant: "default", roles: ["admin"], clientCertSha256: fingerprintOf(pki.client.cert) },
        { name: "app", tenant: "default", roles: ["client"], tokenSha256: hashToken(TOKEN) },
      ],
      extraRoutes: (credentials) => observability.routes(credentials, "admin"),
    });
    const port = daemon.server.port;
    expect(await metricsStatus(port, { ca: pki.ca, identity: pki.client })).toBe(200);
    // Verified by the CA but registered nowhere; signed by a CA the daemon does not trust; none.
    expect(await metricsStatus(port, { ca: pki.ca, identity: pki.stranger })).toBe(401);
    expect(await metricsStatus(port, { ca: pki.ca, identity: pki.untrusted }).catch(() => 0)).not.toBe(200);
    expect(await metricsStatus(port, { ca: pki.ca })).toBe(401);
    // A client credential's token is known but not an admin.
    expect(await metricsStatus(port, { ca: pki.ca, token: TOKEN })).toBe(403);
  });
});

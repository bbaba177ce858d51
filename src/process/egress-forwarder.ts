/**
 * The program that starts an agent whose network is "allow": it listens on the sandbox's
 * own loopback (the agent's HTTP(S)_PROXY) and carries each connection to the daemon's
 * egress proxy through the Unix socket bound into the sandbox; then it runs the agent,
 * passes on the signals it gets, and exits as the agent did. Written to the session's state
 * dir at each start and run with the daemon's own node, so it needs nothing installed.
 */
export const EGRESS_FORWARDER = `
import net from "node:net";
import { spawn } from "node:child_process";
const [port, socketPath, separator, file, ...args] = process.argv.slice(2);
if (separator !== "--" || !file) { process.stderr.write("egress forwarder: usage: PORT SOCKET -- COMMAND...\\\\n"); process.exit(2); }
const server = net.createServer((client) => {
  const upstream = net.connect(socketPath);
  client.pipe(upstream); upstream.pipe(client);
  client.on("error", () => upstream.destroy()); upstream.on("error", () => client.destroy());
});
server.listen(Number(port), "127.0.0.1", () => {
  const agent = spawn(file, args, { stdio: "inherit" });
  for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"]) process.on(signal, () => agent.kill(signal));
  agent.on("error", (error) => { process.stderr.write("egress forwarder: " + error.message + "\\\\n"); process.exit(127); });
  agent.on("exit", (code, signal) => {
    server.close();
    if (signal) { process.removeAllListeners(signal); process.kill(process.pid, signal); }
    else process.exit(code ?? 1);
  });
});
`;

/** The port the forwarder listens on inside the sandbox. */
export const EGRESS_PORT = 3128;

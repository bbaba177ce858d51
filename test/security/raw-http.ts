// Raw-socket clients for hostile-input tests: requests no well-behaved client library sends.
import net from "node:net";

/** Opens a TCP connection to the daemon's address. */
export function connect(url: string): Promise<net.Socket> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), hostname, () => resolve(socket));
    socket.once("error", reject);
  });
}

/**
 * Sends raw bytes and collects one HTTP/1.x response: until its body is complete (by
 * Content-Length or the last chunk), the server closes the connection, or `timeoutMs`.
 */
export async function exchange(url: string, request: Buffer | string, timeoutMs = 10_000): Promise<{ response: string; closed: boolean }> {
  const socket = await connect(url);
  return new Promise((resolve) => {
    let response = "";
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ response, closed: false });
    }, timeoutMs);
    socket.on("data", (chunk: Buffer) => {
      response += chunk.toString("latin1");
      if (responseComplete(response)) socket.destroy();
    });
    socket.on("error", () => {});
    socket.once("close", () => {
      clearTimeout(timer);
      resolve({ response, closed: true });
    });
    socket.write(request);
  });
}

/** Resolves when the server closes `socket`, or rejects after `timeoutMs`. */
export function closedByServer(socket: net.Socket, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    if (socket.destroyed) return resolve();
    const timer = setTimeout(() => reject(new Error(`the server kept the connection open for ${timeoutMs} ms`)), timeoutMs);
    socket.on("error", () => {});
    socket.once("close", () => {
      clearTimeout(timer);
      resolve();
    });
    // Read (and drop) what the server sends: a paused socket never sees its end.
    socket.resume();
  });
}

/** The status code of a raw HTTP/1.x response. */
export function statusOf(response: string): number {
  return Number(/^HTTP\/1\.[01] (\d{3})/.exec(response)?.[1] ?? 0);
}

function responseComplete(response: string): boolean {
  const end = response.indexOf("\r\n\r\n");
  if (end === -1) return false;
  const head = response.slice(0, end);
  const length = /\r\ncontent-length:\s*(\d+)/i.exec(head);
  if (length) return response.length - end - 4 >= Number(length[1]);
  if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) return response.endsWith("\r\n0\r\n\r\n");
  return false;
}

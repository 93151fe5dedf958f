/**
 * HTTP/1.1 requests written byte for byte on a plain socket (fetch would normalise paths, hosts, methods and framing),
 * and their answers read as far as the status line and a little more. Loopback only.
 */
import { connect } from "node:net";
import { bytesOf, concatBytes } from "./bytes.ts";

/** Bytes to write, or a pause before the next ones (a body that trickles). */
export type RawStep = Uint8Array | { pauseMs: number };

export interface RawOutcome {
  /** Absent when nothing that reads as an HTTP answer came. */
  status?: number;
  /** No answer within the bound. */
  timedOut: boolean;
  /** The first bytes of the answer, for the report. */
  head: string;
  ms: number;
}

/** What an answer's head says, once its first line has come; the head is kept up to this many bytes. */
const HEAD_BYTES = 600;
/** After the status line, how long to wait for more of the answer (its error code) before closing. */
const TAIL_MS = 150;

/** Writes `steps` to 127.0.0.1:`port` and reads the answer; stops writing once the server has answered or closed. */
export function rawExchange(port: number, steps: RawStep[], timeoutMs: number): Promise<RawOutcome> {
  const started = performance.now();
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port });
    let received = Buffer.alloc(0);
    let status: number | undefined;
    let finished = false;
    const finish = (timedOut: boolean) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ status, timedOut: timedOut && status === undefined, head: received.subarray(0, HEAD_BYTES).toString("latin1"), ms: Math.round(performance.now() - started) });
    };
    const timer = setTimeout(() => finish(true), timeoutMs);
    socket.on("data", (chunk: Buffer) => {
      if (received.length < HEAD_BYTES) received = Buffer.concat([received, chunk]);
      if (status === undefined) {
        const line = /^HTTP\/1\.[01] (\d{3})/.exec(received.toString("latin1", 0, Math.min(received.length, 64)));
        if (line) {
          status = Number(line[1]);
          setTimeout(() => finish(false), TAIL_MS);
        }
      }
      if (received.length >= HEAD_BYTES && status !== undefined) finish(false);
    });
    socket.on("error", () => finish(false));
    socket.on("close", () => finish(false));
    socket.on("connect", async () => {
      for (const step of steps) {
        if (finished || status !== undefined) return;
        if (step instanceof Uint8Array) {
          if (!socket.write(step)) await new Promise<void>((drained) => socket.once("drain", drained).once("close", drained));
        } else await Bun.sleep(step.pauseMs);
      }
    });
  });
}

export interface RawRequest {
  method: string;
  target: string;
  /** In order, as written; a Host header is not added. */
  headers: [string, string][];
  body?: Uint8Array;
}

/** The request's head and body as bytes; `Content-Length` is added for a body unless a header sets the framing. */
export function requestBytes({ method, target, headers, body }: RawRequest): Uint8Array {
  const framed = headers.some(([name]) => /^(content-length|transfer-encoding)$/i.test(name));
  const all: [string, string][] = body && !framed ? [...headers, ["Content-Length", String(body.length)]] : headers;
  const head = `${method} ${target} HTTP/1.1\r\n${all.map(([name, value]) => `${name}: ${value}\r\n`).join("")}\r\n`;
  return concatBytes([Buffer.from(head, "latin1"), body ?? new Uint8Array(0)]);
}

export interface Part {
  name?: string;
  filename?: string;
  contentType?: string;
  /** Extra header lines of the part, written as they are. */
  extraHeaders?: string[];
  data: Uint8Array;
}

/** A multipart/form-data body; `closed: false` leaves out the closing delimiter. */
export function multipartBody(boundary: string, parts: Part[], closed = true): Uint8Array {
  const chunks: Uint8Array[] = [];
  for (const part of parts) {
    const disposition = ["form-data", part.name !== undefined && `name="${part.name}"`, part.filename !== undefined && `filename="${part.filename}"`].filter(Boolean).join("; ");
    const lines = [`--${boundary}`, `Content-Disposition: ${disposition}`, ...(part.contentType ? [`Content-Type: ${part.contentType}`] : []), ...(part.extraHeaders ?? [])];
    chunks.push(Buffer.from(`${lines.join("\r\n")}\r\n\r\n`, "latin1"), part.data, bytesOf("\r\n"));
  }
  if (closed) chunks.push(bytesOf(`--${boundary}--\r\n`));
  return concatBytes(chunks);
}

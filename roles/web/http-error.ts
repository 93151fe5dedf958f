/** A client-visible failure: status, a stable machine code, a sentence written for the client. It renders itself. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** cause: what went wrong underneath, for the log only, never part of the answer; headers: sent with the answer. */
    options?: { cause?: unknown; headers?: Record<string, string> },
  ) {
    super(message, options);
    this.name = "HttpError";
    this.headers = options?.headers ?? {};
  }

  readonly headers: Record<string, string>;

  /**
   * The answer: the code, the message and the request id, nothing else. Not named `toResponse`: Elysia calls a
   * thrown error's `toResponse()` itself, before the error mapping and without the request id.
   */
  render(requestId: string): Response {
    return Response.json({ error: this.code, message: this.message, requestId }, { status: this.status, headers: this.headers });
  }
}

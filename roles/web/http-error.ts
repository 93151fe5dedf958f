/** A client-visible failure: status, a stable machine code, a sentence written for the client. It renders itself. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** What went wrong underneath, for the log only: never part of the answer. */
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "HttpError";
  }

  /**
   * The answer: the code, the message and the request id, nothing else. Not named `toResponse`: Elysia calls a
   * thrown error's `toResponse()` itself, before the error mapping and without the request id.
   */
  render(requestId: string): Response {
    return Response.json({ error: this.code, message: this.message, requestId }, { status: this.status });
  }
}

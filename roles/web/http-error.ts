/** A client-visible failure: status, a stable machine code, a sentence for people. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "HttpError";
  }

  toResponse(requestId: string): Response {
    return Response.json({ error: this.code, message: this.message, requestId }, { status: this.status, headers: { "x-request-id": requestId } });
  }
}

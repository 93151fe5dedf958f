/**
 * Headers every answer carries, errors and refusals before routing included. `X-Content-Type-Options: nosniff`:
 * text answers echo an uploaded file's name (the classic contract's `<name>:<person>`), and a browser must never sniff
 * one into a page or a script.
 */
import { Elysia } from "elysia";

const SECURITY_HEADERS = { "x-content-type-options": "nosniff" } as const;

export const securityHeaders = new Elysia({ name: "security-headers" }).onRequest(({ set }) => {
  Object.assign(set.headers, SECURITY_HEADERS);
});

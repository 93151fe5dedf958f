// The request-target check on its own: which URLs name a path every router reads alike, as a table.
import { describe, expect, test } from "bun:test";
import { nonCanonical, requestPath } from "../../roles/web/request-target.ts";

describe("the path of a request's URL", () => {
  const cases: [string, string | undefined][] = [
    ["http://localhost:8000/v1/subjects?page=2", "/v1/subjects"],
    ["https://faces.example.com/", "/"],
    ["http://127.0.0.1:8000/healthz", "/healthz"],
    ["http://[::1]:8000/v1/subjects", "/v1/subjects"],
    ["http://web:8000/x", "/x"],
    ["https://api/x", "/x"],
    // Bun's request.url when the Host header is malformed or absent: no authority at all.
    ["/v1/subjects", undefined],
    ["http://localhost#/v1/subjects", undefined],
    ["http://localhost/v1/subjects#x", undefined],
    ["http://ex@mple.com/v1", undefined],
    ["http://localhost\\x/v1", undefined],
    ["http://localhost:123456/v1", undefined],
    ["ftp://localhost/v1", undefined],
    // Elysia's router reads the path from the 12th character on: a shorter authority would shift it.
    ["http://a/zz/v1/subjects", undefined],
    ["http://ab/v1/subjects", undefined],
    ["http://a:1/v1/subjects", undefined],
    ["https://a/v1", undefined],
  ];
  for (const [url, path] of cases) {
    test(`${url}: ${path ?? "malformed"}`, () => expect(requestPath(url)).toBe(path));
  }
});

describe("canonical paths", () => {
  const canonical = ["/", "/v1/subjects", "/v1/subjects/Ada%20Lovelace", "/v1/subjects/Jos%C3%A9", "/v1/subjects/O'Brien", "/v1/subjects/a;b", "/v1/subjects/a%25b", "/docs/assets/swagger-ui.css", "/v1/subjects/.x", "/v1/subjects/x.."];
  for (const path of canonical) test(`${path}: canonical`, () => expect(nonCanonical(path)).toBeUndefined());

  const refused: [string, string][] = [
    ["//v1/subjects", "empty segment"],
    ["/v1//subjects", "empty segment"],
    ["/v1/subjects/", "empty segment"],
    ["/v1/./subjects", "dot segment"],
    ["/v1/subjects/..", "dot segment"],
    ["/v1/subjects/%2e%2e", "percent-encoded '.'"],
    ["/v1/subjects/%2E", "percent-encoded '.'"],
    ["/v1/subjects/%50aul", "percent-encoded 'P'"],
    ["/v1/subjects/a%5cb", "slash or backslash"],
    ["/v1/subjects/a%5Cb", "slash or backslash"],
    ["/v1/subjects/a%2fb", "slash or backslash"],
    ["/v1/subjects/a%00", "control character"],
    ["/v1/subjects/a%7F", "control character"],
    ["/v1/subjects/a\\b", "must be percent-encoded"],
    ["/v1/subjects/a b", "must be percent-encoded"],
    ["/v1/subjects/é", "must be percent-encoded"],
    ["/v1/subjects/a%zz", "two hex digits"],
    ["/v1/subjects/a%2", "two hex digits"],
    ["/v1/subjects/%C3", "not UTF-8"],
    ["/v1/subjects/%FF", "not UTF-8"],
  ];
  for (const [path, reason] of refused) test(`${path}: ${reason}`, () => expect(nonCanonical(path)).toContain(reason));
});

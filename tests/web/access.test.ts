// The access policy and the template a path names: pure decisions, tested as tables.
import { describe, expect, test } from "bun:test";
import { accessPolicy, paramsOf, templateOf, type Credential, type RouteTemplate } from "../../roles/web/access.ts";

describe("which credential a route needs, by method and template", () => {
  const cases: [string, string, boolean, Credential][] = [
    ["POST", "/v1/recognize", false, "recognition"],
    ["GET", "/v1/subjects", false, "admin"],
    ["DELETE", "/v1/subjects/:name/faces/:faceId", false, "admin"],
    ["GET", "/v1", false, "admin"],
    ["GET", "/v1/a-route-to-come", false, "admin"],
    ["POST", "/", false, "none"],
    ["POST", "/", true, "recognition"],
    ["GET", "/", true, "none"],
    ["GET", "/healthz", true, "none"],
    ["GET", "/metrics", false, "none"],
    ["GET", "/openapi/json", false, "none"],
    ["GET", "/v10/x", false, "none"],
    ["GET", "/docs/v1/x", false, "none"],
  ];
  for (const [method, template, classicAuth, credential] of cases) {
    test(`${method} ${template}${classicAuth ? " (classicAuth)" : ""}: ${credential}`, () => {
      expect(accessPolicy({ classicAuth })(method, template)).toBe(credential);
    });
  }
});

describe("the template a canonical path names", () => {
  const routes: RouteTemplate[] = [
    { method: "GET", path: "/" },
    { method: "POST", path: "/" },
    { method: "GET", path: "/v1/subjects" },
    { method: "GET", path: "/v1/subjects/:name" },
    { method: "GET", path: "/v1/subjects/export" },
    { method: "POST", path: "/v1/subjects/:name/faces" },
    { method: "POST", path: "/v1/subjects/:name/verify" },
    { method: "DELETE", path: "/v1/subjects/:name/faces/:faceId" },
  ];
  const cases: [string, string, string | undefined][] = [
    ["GET", "/", "/"],
    ["HEAD", "/v1/subjects", "/v1/subjects"],
    ["GET", "/v1/subjects/Paul", "/v1/subjects/:name"],
    ["GET", "/v1/subjects/export", "/v1/subjects/export"], // a static segment before a parameter, as routers choose
    ["POST", "/v1/subjects/Paul/faces", "/v1/subjects/:name/faces"],
    ["POST", "/v1/subjects/Paul/verify", "/v1/subjects/:name/verify"],
    ["DELETE", "/v1/subjects/Paul/faces/f1", "/v1/subjects/:name/faces/:faceId"],
    ["DELETE", "/v1/subjects/Paul", undefined],
    ["GET", "/v1/subjects/Paul/faces", undefined],
    ["GET", "/V1/subjects", undefined],
    ["GET", "/v1", undefined],
  ];
  for (const [method, path, template] of cases) {
    test(`${method} ${path}: ${template ?? "none"}`, () => {
      expect(templateOf(method, path, routes)).toBe(template);
      // The order the routes were added in does not matter.
      expect(templateOf(method, path, [...routes].reverse())).toBe(template);
    });
  }

  test("the parameters, decoded as routers decode them", () => {
    expect(paramsOf("/v1/subjects/:name/faces/:faceId", "/v1/subjects/Ada%20Lovelace/faces/f7")).toEqual({ name: "Ada Lovelace", faceId: "f7" });
    expect(paramsOf("/v1/subjects/:name", "/v1/subjects/Jos%C3%A9")).toEqual({ name: "José" });
    expect(paramsOf("/v1/subjects", "/v1/subjects")).toEqual({});
  });
});

/**
 * The JSON API lives under one path, all of it behind the bearer token: recognize, verify and search tell who is
 * enrolled, detect spends the fleet's compute, the subjects routes change the gallery. Named, so mounting it with
 * every API plugin checks a request once.
 */
import { Elysia } from "elysia";
import { bearerGuard, type RecognitionKeys } from "./bearer.ts";

export const API_PATH = "/v1";

/** `keys`: the recognition keys, taken on the routes `key-scope.ts` names; without, only the admin token opens /v1. */
export function apiGuard(token: () => string, keys?: RecognitionKeys) {
  return new Elysia({ name: "api-guard" }).use(bearerGuard((_method, pathname) => pathname === API_PATH || pathname.startsWith(`${API_PATH}/`), token, keys));
}

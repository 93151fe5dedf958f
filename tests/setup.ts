// Preloaded by `bun test` (bunfig.toml): the ONNX files are built once, before any test needs them, and tests
// get 30 s each (bun takes no default timeout from bunfig.toml; CI's 2 cores are slow under a full suite).
import { setDefaultTimeout } from "bun:test";
import { buildModels } from "../model/build/index.ts";

setDefaultTimeout(30_000);
await buildModels();

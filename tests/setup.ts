// Preloaded by `bun test` (bunfig.toml): the ONNX files are built once, before any test needs them.
// (Test timeouts are per file in bun: slow files call setDefaultTimeout themselves.)
import { buildModels } from "../model/build/index.ts";

await buildModels();

// Preloaded by `bun test` (bunfig.toml): the ONNX files are built once, before any test needs them.
import { buildModels } from "../model/build/index.ts";

await buildModels();

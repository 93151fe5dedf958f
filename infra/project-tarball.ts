/**
 * The project as an image gets it: the files git tracks, as they are in the working tree (uncommitted edits
 * included, untracked files not), in a gzipped tar whose files belong to root. infra/bake-ami.ts uploads it for the
 * builder; tests/deploy/production-install.test.ts installs exactly this.
 */
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";

export const PROJECT_ROOT = resolve(import.meta.dir, "..");

export interface ProjectTarball {
  bytes: Uint8Array;
  /** HEAD's short commit id. */
  commit: string;
  /** The working tree's tracked files differ from that commit. */
  modified: boolean;
}

function run(command: string[], root: string, stdin?: Uint8Array): Uint8Array {
  const result = Bun.spawnSync(command, { cwd: root, stdin, stdout: "pipe", stderr: "pipe" });
  if (!result.success) throw new Error(`${command.join(" ")}: ${result.stderr.toString().trim()}`);
  return result.stdout;
}

export function packProject(root = PROJECT_ROOT): ProjectTarball {
  const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  // A tracked file deleted in the working tree is left out, as the next commit would leave it out.
  const files = text(run(["git", "ls-files", "-z"], root))
    .split("\0")
    .filter((file) => file && existsSync(join(root, file)));
  const list = new TextEncoder().encode(files.join("\0"));
  const bytes = run(["tar", "--null", "--files-from=-", "--owner=0", "--group=0", "--numeric-owner", "-czf", "-"], root, list);
  return {
    bytes,
    commit: text(run(["git", "rev-parse", "--short", "HEAD"], root)).trim(),
    modified: text(run(["git", "status", "--porcelain", "--untracked-files=no"], root)).trim() !== "",
  };
}

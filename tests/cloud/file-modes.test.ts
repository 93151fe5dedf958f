// The embedded mode's files are the owner's only: the data directory and the buckets' folders 0700, every object,
// metadata and lock file 0600, whatever the umask left them; the admin token's file and folder too.
import { expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readdirSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FileBlobStore } from "../../roles/cloud/local/file-bucket.ts";
import { apiTokenFile, localApiToken } from "../../roles/web/api-token.ts";
import { captureLogs } from "../support/logs.ts";

const modeOf = (path: string) => statSync(path).mode & 0o777;

/** Every folder and file under `root`, with its mode. */
function modesUnder(root: string): { path: string; mode: number; folder: boolean }[] {
  return readdirSync(root, { recursive: true, encoding: "utf8" }).map((name) => {
    const info = statSync(join(root, name));
    return { path: name, mode: info.mode & 0o777, folder: info.isDirectory() };
  });
}

test("a bucket makes its data directory 0700, its folders 0700 and every file 0600, whatever the umask", async () => {
  const dataDir = join(mkdtempSync(join(tmpdir(), "facefleet-modes-")), "data");
  const umask = process.umask(0o000);
  try {
    const bucket = new FileBlobStore(dataDir).bucket("gallery");
    await bucket.put("gallery/gallery.bin", new Uint8Array([1, 2, 3]), { metadata: { subjects: "1" } });
    await bucket.putStream("upload/photo.jpg", new Blob([new Uint8Array(100_000)]).stream());
    await bucket.putIf("_secrets/api-keys.json", "{}", undefined);
    expect(modeOf(dataDir)).toBe(0o700);
    const entries = modesUnder(dataDir);
    expect(entries.filter((entry) => !entry.folder)).toHaveLength(4);
    for (const entry of entries) expect(`${entry.path} ${entry.mode.toString(8)}`).toBe(`${entry.path} ${entry.folder ? "700" : "600"}`);
  } finally {
    process.umask(umask);
  }
});

test("a bucket folder left open by an older version is closed to others when the bucket first writes", async () => {
  const dataDir = mkdtempSync(join(tmpdir(), "facefleet-modes-"));
  mkdirSync(join(dataDir, "in"), { mode: 0o755 });
  await new FileBlobStore(dataDir).bucket("in").put("a", "b");
  expect(modeOf(join(dataDir, "in"))).toBe(0o700);
  expect(modeOf(join(dataDir, "in", "a"))).toBe(0o600);
});

test("the admin token's file is 0600 and the data directory it makes 0700", () => {
  const dataDir = join(mkdtempSync(join(tmpdir(), "facefleet-modes-")), "data");
  const umask = process.umask(0o000);
  try {
    localApiToken(dataDir, captureLogs().logger);
    expect(modeOf(dataDir)).toBe(0o700);
    expect(modeOf(apiTokenFile(dataDir))).toBe(0o600);
  } finally {
    process.umask(umask);
  }
});

// Whether an emulated instance's cloud-init runs a launch's user data: as the image's cloud-init configuration says.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { cloudConfigOf, hereDocuments, userScript } from "../../infra/sim/ec2/cloud-init.ts";
import { CLOUD_INIT_CONFIG, CLOUD_INIT_DROP_IN } from "../../infra/user-data.ts";

const dirs: string[] = [];
afterAll(() => dirs.forEach((dir) => rmSync(dir, { recursive: true, force: true })));

/** An image's root directory holding `files` (absolute paths inside it). */
function image(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), "facefleet-cloud-init-"));
  dirs.push(root);
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), content);
  }
  return root;
}

const SCRIPT = "#!/bin/bash\ncat > /var/lib/owned <<'EOF'\nroot\nEOF\n";

describe("the emulated cloud-init", () => {
  test("a stock image runs a user script; an image without cloud-init files is configured as the stock one", () => {
    expect(userScript(SCRIPT, cloudConfigOf(undefined))).toBe(SCRIPT);
    expect(userScript(SCRIPT, cloudConfigOf(image({})))).toBe(SCRIPT);
  });

  test("the baked image's drop-in discards user data", () => {
    expect(userScript(SCRIPT, cloudConfigOf(image({ [CLOUD_INIT_DROP_IN]: CLOUD_INIT_CONFIG })))).toBeUndefined();
  });

  test("each of its two settings is enough alone: allow_userdata false, or no scripts-user in the final stage", () => {
    expect(userScript(SCRIPT, cloudConfigOf(image({ "/etc/cloud/cloud.cfg.d/50-a.cfg": "allow_userdata: false\n" })))).toBeUndefined();
    const noScriptsUser = "cloud_final_modules: [scripts-per-once, scripts_per_boot, final-message]\n";
    expect(userScript(SCRIPT, cloudConfigOf(image({ "/etc/cloud/cloud.cfg.d/50-a.cfg": noScriptsUser })))).toBeUndefined();
    // Underscores and dashes name the same module.
    expect(userScript(SCRIPT, cloudConfigOf(image({ "/etc/cloud/cloud.cfg.d/50-a.cfg": "cloud_final_modules: [scripts_user]\n" })))).toBe(SCRIPT);
  });

  test("drop-ins merge in name order over cloud.cfg, a later file's key replacing an earlier one's; other files are not read", () => {
    const root = image({
      "/etc/cloud/cloud.cfg": "allow_userdata: false\n",
      "/etc/cloud/cloud.cfg.d/10-off.cfg": "allow_userdata: false\n",
      "/etc/cloud/cloud.cfg.d/90-on.cfg": "allow_userdata: true\n",
      "/etc/cloud/cloud.cfg.d/99-off.cfg.disabled": "allow_userdata: false\n",
    });
    expect(userScript(SCRIPT, cloudConfigOf(root))).toBe(SCRIPT);
  });

  test("only a shell script is run; no user data, none", () => {
    expect(userScript("#cloud-config\nruncmd: [touch /owned]\n", cloudConfigOf(undefined))).toBeUndefined();
    expect(userScript(undefined, cloudConfigOf(undefined))).toBeUndefined();
  });

  test("a script's here-documents are the files it writes", () => {
    expect(hereDocuments(SCRIPT)).toEqual([{ path: "/var/lib/owned", content: "root\n" }]);
  });
});

/**
 * cloud-init as an emulated instance plays it: whether the image's configuration lets a launch's user data run, and
 * what a user script does. The configuration is the stock one (user data consumed, `scripts-user` in the final stage)
 * merged, as cloud-init merges it, with the image's `/etc/cloud/cloud.cfg` and then `/etc/cloud/cloud.cfg.d/*.cfg` in
 * name order: a later file's top-level keys replace the earlier ones, lists included. User data runs once per
 * instance (at its first boot), and only a shell script (`#!`): a cloud-config is not emulated.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

export interface CloudConfig {
  allow_userdata?: unknown;
  cloud_final_modules?: unknown;
}

/** What a stock Amazon Linux 2023 image does with user data. */
const STOCK_CONFIG: CloudConfig = { allow_userdata: true, cloud_final_modules: ["scripts-per-once", "scripts-per-boot", "scripts-per-instance", "scripts-user", "final-message"] };

/** The image's merged configuration; `rootDir` undefined is a stock image. */
export function cloudConfigOf(rootDir: string | undefined): CloudConfig {
  if (rootDir === undefined) return STOCK_CONFIG;
  const dropIns = join(rootDir, "etc/cloud/cloud.cfg.d");
  const files = [join(rootDir, "etc/cloud/cloud.cfg"), ...(existsSync(dropIns) ? readdirSync(dropIns).filter((name) => name.endsWith(".cfg")).sort().map((name) => join(dropIns, name)) : [])];
  return files
    .filter((file) => existsSync(file))
    .reduce<CloudConfig>((merged, file) => ({ ...merged, ...(Bun.YAML.parse(readFileSync(file, "utf8")) as CloudConfig | null) }), STOCK_CONFIG);
}

/** cloud-init names a module with dashes or underscores alike. */
const runsModule = (modules: unknown, name: string) => Array.isArray(modules) && modules.some((module) => String(module).replaceAll("_", "-") === name);

/** The user script cloud-init runs for `userData` (already decoded from base64) under `config`, if any. */
export function userScript(userData: string | undefined, config: CloudConfig): string | undefined {
  if (userData === undefined || !userData.startsWith("#!")) return undefined;
  if (config.allow_userdata === false || !runsModule(config.cloud_final_modules, "scripts-user")) return undefined;
  return userData;
}

/** A file the script writes with a quoted here-document: `cat > /etc/x <<'DELIMITER'` ... `DELIMITER`. */
const HERE_DOCUMENT = /^cat > (\/\S+) <<'(\w+)'\n([\s\S]*?)^\2$/gm;

/** The files a script writes with quoted here-documents, by absolute path. */
export function hereDocuments(script: string): { path: string; content: string }[] {
  return [...script.matchAll(HERE_DOCUMENT)].map(([, path, , content]) => ({ path: path!, content: content! }));
}

/**
 * facefleet's one entry point. Picks its roles (--role, FACEFLEET_ROLE, the EC2 instance's Role tag, else all
 * of them embedded on local stand-ins), starts them, and stops them cleanly on SIGINT/SIGTERM.
 */
import { loadConfig, ConfigError } from "./roles/config.ts";
import { resolveRoles, RoleError } from "./roles/boot.ts";
import { createLogger, errorFields } from "./roles/log.ts";
import { startRoles } from "./roles/start.ts";

const log = createLogger({ pid: process.pid });

try {
  const config = loadConfig();
  const resolution = await resolveRoles(process.argv.slice(2), config.role, process.env, { required: config.instanceMetadata === "required" });
  log.info("roles_resolved", { ...resolution });
  const running = await startRoles(config, resolution, log);
  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info("shutting_down", { signal });
    await running.stop();
    process.exit(0);
  };
  process.on("SIGINT", () => void shutdown("SIGINT"));
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
} catch (error) {
  if (error instanceof ConfigError || error instanceof RoleError) {
    console.error(error.message);
    process.exit(2);
  }
  log.error("boot_failed", errorFields(error));
  process.exit(1);
}

/**
 * facefleet's one entry point. Picks its roles (--role, FACEFLEET_ROLE, the EC2 instance's Role tag, else all
 * of them embedded on local stand-ins), starts them, and stops them cleanly on SIGINT/SIGTERM.
 */
import { loadConfig, ConfigError } from "./roles/config.ts";
import { resolveRoles, RoleError } from "./roles/boot.ts";
import { createLogger, errorFields } from "./roles/log.ts";

const log = createLogger({ pid: process.pid });
/** Since this process started (Bun's clock starts with the process), and the CPU it used: the start-up's figures. */
const sinceStart = () => {
  const cpu = process.cpuUsage();
  return { sinceStartMs: Math.round(performance.now()), cpuMs: Math.round((cpu.user + cpu.system) / 1000) };
};

try {
  const config = loadConfig();
  // The roles' modules load while instance metadata is asked, which off EC2 waits out its timeout.
  const loading = import("./roles/start.ts");
  loading.catch(() => {}); // awaited below, unless the roles cannot be resolved
  const resolution = await resolveRoles(process.argv.slice(2), config.role, process.env, { required: config.instanceMetadata === "required" });
  log.info("roles_resolved", { ...resolution, ...sinceStart() });
  const { startRoles } = await loading;
  const running = await startRoles(config, resolution, log);
  log.info("roles_started", sinceStart());
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

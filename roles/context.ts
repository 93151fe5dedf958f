/** What every role is started with, and what it gives back. */
import type { Cloud } from "./cloud/types.ts";
import type { Config, ResourceNames } from "./config.ts";
import type { Logger } from "./log.ts";
import type { ServiceMetrics } from "./metrics.ts";

/** `C`: the slice of the configuration the role reads (`WebConfig`, `AppConfig`, `ControllerConfig`). */
export interface RoleContext<C = Config> {
  config: C;
  names: ResourceNames;
  cloud: Cloud;
  log: Logger;
  /** Each role's health by role name, for the web role's /healthz. */
  health?: Map<string, () => Record<string, unknown>>;
  /** This process's Prometheus series: each role records into it, the web role serves it. */
  metrics: ServiceMetrics;
}

export interface RunningRole {
  stop(): Promise<void>;
}

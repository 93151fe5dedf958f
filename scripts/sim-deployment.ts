/**
 * The AWS deployment in an emulated region on loopback, as scripts/cloud-sim.ts and scripts/chaos.ts run it: S3 and
 * SQS (fauxqs), EC2 whose instances are local `bun index.ts` processes finding their role through instance metadata,
 * IAM. Runs infra/bootstrap.ts, infra/bake-ami.ts and infra/launch.ts against it as a user would against AWS, so the
 * web tier answers on `port` like the real one.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { awsCloud } from "../roles/cloud/index.ts";
import type { Cloud } from "../roles/cloud/types.ts";
import { loadConfig, resourceNames, type Config, type ResourceNames } from "../roles/config.ts";
import type { Instance } from "../infra/sim/ec2/model.ts";
import { REPO_ROOT, startRegion, type EmulatedRegion } from "../infra/sim/region.ts";

export const SIM_PREFIX = "facefleet-sim";

export interface SimDeploymentOptions {
  bootDelayMs: number;
  startDelayMs: number;
  pool: "warm" | "cold";
  port: number;
  /** More deployment settings (FACEFLEET_*), for every instance and this process. */
  settings?: Record<string, string>;
  /** More environment for one app or web instance's process. */
  instanceEnv?(instance: Instance, tags: Record<string, string>, region: EmulatedRegion): Record<string, string> | undefined;
  /** Runs after the image is baked, before the instances are launched. */
  beforeLaunch?(deployment: Pick<SimDeployment, "cloud" | "names">): Promise<void>;
}

export interface SimDeployment {
  region: EmulatedRegion;
  config: Config;
  names: ResourceNames;
  cloud: Cloud;
  webUrl: string;
  /** Runs one infra script against the region. */
  infra(script: string, ...extra: string[]): Promise<void>;
}

export async function startSimDeployment(options: SimDeploymentOptions): Promise<SimDeployment> {
  /** The deployment's settings, as the AMI's /etc/facefleet.json would give them to every instance. */
  const settings: Record<string, string> = {
    FACEFLEET_PREFIX: SIM_PREFIX,
    FACEFLEET_PORT: String(options.port),
    FACEFLEET_HOST: "127.0.0.1",
    // As the baked image sets it: an instance never falls back to the embedded mode.
    FACEFLEET_INSTANCE_METADATA: "required",
    FACEFLEET_POOL_POLICY: options.pool,
    ...options.settings,
  };
  const work = mkdtempSync(join(tmpdir(), "facefleet-sim-"));
  const stateFile = join(work, `${SIM_PREFIX}.json`);
  const region = await startRegion({
    bootDelayMs: options.bootDelayMs,
    startDelayMs: options.startDelayMs,
    // Stopping takes EC2 a fraction of a boot.
    stopDelayMs: options.bootDelayMs / 4,
    logDir: join(work, "instances"),
    instanceEnv: settings,
    // What the instance's image runs, with more environment for the instances the caller names.
    instanceProcess(instance, fromImage) {
      const env = options.instanceEnv?.(instance, region.ec2.store.tagsOf(instance.id), region);
      return fromImage && env ? { ...fromImage, env: { ...fromImage.env, ...env } } : fromImage;
    },
  });
  Object.assign(process.env, region.env, settings);
  const config = loadConfig();
  const names = resourceNames(config);
  // This process is the operator's, not an instance: it has no instance metadata to read its account from.
  const cloud = awsCloud({ ...config, instanceMetadata: "optional" });
  const infra = async (script: string, ...extra: string[]): Promise<void> => {
    console.error(`$ bun run infra/${script}.ts ${extra.join(" ")}`);
    const child = Bun.spawn([process.execPath, `infra/${script}.ts`, "--state-file", stateFile, ...extra], {
      cwd: REPO_ROOT,
      env: { ...process.env, AWS_EC2_METADATA_DISABLED: "true" },
      stdout: "inherit",
      stderr: "inherit",
    });
    if ((await child.exited) !== 0) throw new Error(`infra/${script}.ts failed`);
  };
  const webUrl = `http://127.0.0.1:${options.port}`;
  try {
    // The web tier listens on loopback only.
    await infra("bootstrap", "--ingress-cidr", "127.0.0.1/32");
    await infra("bake-ami", "--image", Object.values(region.ec2.stockImages)[0]!);
    await options.beforeLaunch?.({ cloud, names });
    await infra("launch", "--pool", options.pool);
    while (!(await fetch(`${webUrl}/healthz`).then((r) => r.ok, () => false))) await Bun.sleep(200);
  } catch (error) {
    await region.stop();
    throw error;
  }
  return { region, config, names, cloud, webUrl, infra };
}

/**
 * The AMI builder's user data, a pure function of where the project tarball is and how to report back. Written
 * for Amazon Linux 2023 (dnf, the AWS CLI and systemd 252 are on the stock image). The builder installs the pinned
 * Bun from npm, the project with its models, a service user and a systemd unit that runs `bun index.ts` as that
 * user at every boot (the role comes from the instance's Role tag), then reports through a marker object and powers
 * off so that the image is taken from a stopped, consistent disk.
 */
import packageJson from "../package.json";

export const PROJECT_DIR = "/opt/facefleet";
export const ENVIRONMENT_FILE = "/etc/facefleet.env";
/** The deployment's whole configuration as the baking machine resolved it (roles/config.ts reads it via FACEFLEET_CONFIG). */
export const CONFIG_FILE = "/etc/facefleet.json";
export const SERVICE_NAME = "facefleet";
export const SYSTEMD_UNIT_FILE = `/etc/systemd/system/${SERVICE_NAME}.service`;
/** The unprivileged user the service runs as: it owns nothing but its cache directory. */
export const SERVICE_USER = "facefleet";
/**
 * The one directory the service writes (systemd's CacheDirectory=, owned by the service user): Bun's transpiler cache
 * and onnxruntime's telemetry database, both under XDG_CACHE_HOME. The data directory is written only in the
 * embedded mode, which the image never runs.
 */
export const CACHE_DIR = `/var/cache/${SERVICE_NAME}`;

/**
 * The image takes nothing from user data. Whoever may launch from it (the controller's RunInstances grant, which no IAM
 * condition key can keep from passing UserData) would otherwise have cloud-init run their script, or their
 * cloud-config's bootcmd, write_files and runcmd, as root at first boot. `allow_userdata: false` (cloud-init 19.3 and
 * later; AL2023 ships 22.2) discards all of it; scripts-user is also left out of the final stage, so that a shell
 * script would not run even under a cloud-init that ignored the first setting. The instance's role comes from its
 * Role tag, never from user data.
 */
export const CLOUD_INIT_DROP_IN = "/etc/cloud/cloud.cfg.d/99-facefleet-no-user-data.cfg";
export const CLOUD_INIT_CONFIG = `allow_userdata: false
cloud_final_modules: [scripts-vendor, scripts-per-once, scripts-per-boot, scripts-per-instance, ssh-authkey-fingerprints, keys-to-console, final-message]
`;

/** The Bun version the project is tested with: package.json's `packageManager`, its one home. CI and the image install this one. */
export const BUN_VERSION = bunVersionOf(packageJson.packageManager);

export function bunVersionOf(packageManager: string): string {
  const match = /^bun@(\d+\.\d+\.\d+)$/.exec(packageManager);
  if (!match) throw new Error(`package.json's packageManager must pin Bun as bun@<major.minor.patch>, not '${packageManager}'`);
  return match[1]!;
}

/**
 * The project's install, run in the unpacked project directory: by the builder's user data, by the emulated
 * region's builder (infra/sim/ami-builder.ts) and by tests/deploy/production-install.test.ts. The model build reads
 * the published weights from dev dependencies; the image keeps only production ones.
 */
export const PROJECT_INSTALL_STEPS = ["bun install --frozen-lockfile", "bun run model:build", "rm -rf node_modules", "bun install --production --frozen-lockfile"];

export interface BuilderUserDataInput {
  bucket: string;
  tarballKey: string;
  /** The builder writes `<markerPrefix>done` on success, `<markerPrefix>failed` (its log) on failure. */
  markerPrefix: string;
  region: string;
  /** The configuration every instance of the image runs with; the role is left to each instance's tag. */
  config: Record<string, unknown>;
}

const SAFE_KEY = /^[A-Za-z0-9!_.*'()/-]+$/;

export function environmentFile(environment: Record<string, string>): string {
  return Object.entries(environment)
    .map(([name, value]) => {
      if (!/^[A-Z_][A-Z0-9_]*$/.test(name)) throw new Error(`bad environment variable name: ${name}`);
      if (/[\n\r"\\$`]/.test(value)) throw new Error(`environment variable ${name} holds a character the unit file cannot carry`);
      return `${name}="${value}"\n`;
    })
    .join("");
}

export function systemdUnit(): string {
  return `[Unit]
Description=facefleet face recognition (role from the instance's Role tag)
Wants=network-online.target
After=network-online.target
# An instance never gives up on its service: no start rate limit. systemd 252 (AL2023) has no RestartSteps= or
# RestartMaxDelaySec= (254 and later), so the pause between tries is a fixed RestartSec=: 5 s is 0.2 boots a second,
# each of which waits up to 30 s for instance metadata before failing, which is load enough on AWS.
StartLimitIntervalSec=0

[Service]
User=${SERVICE_USER}
Group=${SERVICE_USER}
WorkingDirectory=${PROJECT_DIR}
EnvironmentFile=${ENVIRONMENT_FILE}
Environment=HOME=${CACHE_DIR} XDG_CACHE_HOME=${CACHE_DIR}
# Production mode: Bun's answer to an uncaught error is a bare 500, never its developer page with the source.
Environment=NODE_ENV=production
ExecStart=/usr/bin/env bun index.ts
Restart=on-failure
RestartSec=5
KillSignal=SIGTERM
TimeoutStopSec=30
# The service decodes untrusted images in native code: it gets no way to gain privileges, a read-only system
# (${PROJECT_DIR} included), no home directories, its own /tmp, and one writable directory: its cache, which
# CacheDirectory= creates for the service user and exempts from ProtectSystem=, so no ReadWritePaths= is needed.
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
CacheDirectory=${SERVICE_NAME}
# One unit for every instance type, so the ceiling is a share of the instance's memory: 85% leaves about 150 MB on
# a t3.micro (1 GiB, the web tier) and 300 MB on a t3.small (2 GiB, an app instance) to the kernel, journald and the
# agents. An image that expands past it kills this service alone, which systemd restarts, rather than letting the
# kernel's OOM killer pick any process of the instance.
MemoryMax=85%

[Install]
WantedBy=multi-user.target
`;
}

export function builderUserData(input: BuilderUserDataInput): string {
  for (const key of [input.bucket, input.tarballKey, input.markerPrefix]) {
    if (!SAFE_KEY.test(key)) throw new Error(`unsafe S3 name for a shell script: ${key}`);
  }
  if (!/^[a-z0-9-]+$/.test(input.region)) throw new Error(`bad region: ${input.region}`);
  const s3 = `s3://${input.bucket}`;
  // The admin token lives in the input bucket, never in the image or the user data.
  const { role: _role, apiToken: _apiToken, ...deployment } = input.config;
  // The image runs only on EC2: its instances wait for their metadata service rather than ever running embedded, and
  // listen on every interface (the default is loopback), the security group saying who may reach them.
  const config = { ...deployment, instanceMetadata: "required", host: "0.0.0.0" };
  const environment = { FACEFLEET_CONFIG: CONFIG_FILE, AWS_REGION: input.region };
  return `#!/bin/bash
# facefleet AMI builder: runs once as root via cloud-init.
set -euo pipefail
exec > /var/log/facefleet-bake.log 2>&1
export AWS_REGION=${input.region} HOME=/root
report_failure() {
  aws s3 cp /var/log/facefleet-bake.log ${s3}/${input.markerPrefix}failed || true
  shutdown -h now
}
trap report_failure ERR

# AL2023 packages Node.js by major version (20, 22, 24); npm-22 is the namespaced npm of Node.js 22.
dnf install -y nodejs22 nodejs22-npm tar gzip
npm-22 install -g bun@${BUN_VERSION}
export PATH="/usr/local/bin:$PATH"
bun --version
useradd --system --user-group --no-create-home --home-dir ${CACHE_DIR} --shell /sbin/nologin ${SERVICE_USER}

# Everything under ${PROJECT_DIR} belongs to root: the service user reads it and writes none of it.
mkdir -p ${PROJECT_DIR}
aws s3 cp ${s3}/${input.tarballKey} /tmp/facefleet.tar.gz
tar -xzf /tmp/facefleet.tar.gz -C ${PROJECT_DIR} --no-same-owner
rm /tmp/facefleet.tar.gz
cd ${PROJECT_DIR}
${PROJECT_INSTALL_STEPS.join("\n")}
# The image need not carry the download caches (about 1 GB of packages the snapshot would keep).
rm -rf /root/.bun/install/cache /root/.npm

cat > ${CONFIG_FILE} <<'FACEFLEET_CONFIG_JSON'
${JSON.stringify(config)}
FACEFLEET_CONFIG_JSON
cat > ${ENVIRONMENT_FILE} <<'FACEFLEET_ENV'
${environmentFile(environment)}FACEFLEET_ENV
chmod 600 ${ENVIRONMENT_FILE}
# The service reads its configuration; systemd (as root) reads the environment file.
chown root:${SERVICE_USER} ${CONFIG_FILE}
chmod 640 ${CONFIG_FILE}
cat > ${SYSTEMD_UNIT_FILE} <<'FACEFLEET_UNIT'
${systemdUnit()}FACEFLEET_UNIT
systemctl daemon-reload
systemctl enable ${SERVICE_NAME}.service
# Last, so that this boot's cloud-init has consumed this script already: instances of the image get no user data run.
cat > ${CLOUD_INIT_DROP_IN} <<'FACEFLEET_CLOUD_CFG'
${CLOUD_INIT_CONFIG}FACEFLEET_CLOUD_CFG

echo ok | aws s3 cp - ${s3}/${input.markerPrefix}done
shutdown -h now
`;
}

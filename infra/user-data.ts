/**
 * The AMI builder's user data, a pure function of where the project tarball is and how to report back. Written
 * for Amazon Linux 2023 (dnf, the AWS CLI and systemd are on the stock image). The builder installs Bun from npm,
 * the project with its models, and a systemd unit that runs `bun index.ts` at every boot (the role comes from the
 * instance's Role tag), then reports through a marker object and powers off so that the image is taken from a
 * stopped, consistent disk.
 */
export const PROJECT_DIR = "/opt/facefleet";
export const ENVIRONMENT_FILE = "/etc/facefleet.env";
/** The deployment's whole configuration as the baking machine resolved it (roles/config.ts reads it via FACEFLEET_CONFIG). */
export const CONFIG_FILE = "/etc/facefleet.json";
export const SERVICE_NAME = "facefleet";

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

[Service]
WorkingDirectory=${PROJECT_DIR}
EnvironmentFile=${ENVIRONMENT_FILE}
ExecStart=/usr/bin/env bun index.ts
Restart=on-failure
RestartSec=2
KillSignal=SIGTERM
TimeoutStopSec=30

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
  // The image runs only on EC2: its instances wait for their metadata service rather than ever running embedded.
  const config = { ...deployment, instanceMetadata: "required" };
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
npm-22 install -g bun
export PATH="/usr/local/bin:$PATH"
bun --version

mkdir -p ${PROJECT_DIR}
aws s3 cp ${s3}/${input.tarballKey} /tmp/facefleet.tar.gz
tar -xzf /tmp/facefleet.tar.gz -C ${PROJECT_DIR}
rm /tmp/facefleet.tar.gz
cd ${PROJECT_DIR}
# The model build reads the published weights from dev dependencies; the image keeps only production ones.
bun install --frozen-lockfile
bun run model:build
rm -rf node_modules
bun install --production --frozen-lockfile

cat > ${CONFIG_FILE} <<'FACEFLEET_CONFIG_JSON'
${JSON.stringify(config)}
FACEFLEET_CONFIG_JSON
cat > ${ENVIRONMENT_FILE} <<'FACEFLEET_ENV'
${environmentFile(environment)}FACEFLEET_ENV
chmod 600 ${CONFIG_FILE} ${ENVIRONMENT_FILE}
cat > /etc/systemd/system/${SERVICE_NAME}.service <<'FACEFLEET_UNIT'
${systemdUnit()}FACEFLEET_UNIT
systemctl daemon-reload
systemctl enable ${SERVICE_NAME}.service

echo ok | aws s3 cp - ${s3}/${input.markerPrefix}done
shutdown -h now
`;
}

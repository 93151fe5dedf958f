/**
 * The emulated AWS region on loopback, in one call: S3 + SQS (fauxqs), EC2 (instances are local processes, each with
 * its own IMDSv2 service) and IAM. Processes reach it through the SDK's standard settings only (`env`).
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { cloudConfigOf, hereDocuments, userScript } from "./ec2/cloud-init.ts";
import { serviceRestartOf } from "./ec2/systemd.ts";
import { startEc2Emulator, type Ec2Emulator } from "./ec2/server.ts";
import { ACCOUNT_ID, type Instance } from "./ec2/model.ts";
import type { ProcessSpec } from "./ec2/process.ts";
import type { FaultSwitch } from "./faults.ts";
import type { PolicyDocument } from "../policies.ts";
import { accessControl, accessKeyOf, ec2Access, instanceAccessKey, unauthorized, type AccessControl } from "./iam/access.ts";
import type { AccessRequest } from "./iam/evaluate.ts";
import { roleArn } from "./iam/model.ts";
import { startIamEmulator, type IamEmulator } from "./iam/server.ts";
import { startImds, type ImdsServer } from "./imds/server.ts";
import { startS3AndSqs, type S3SqsEmulator } from "./fauxqs.ts";
import { CONFIG_FILE, PROJECT_DIR, SYSTEMD_UNIT_FILE } from "../user-data.ts";

export const REPO_ROOT = resolve(import.meta.dir, "../..");

/** The test credentials every emulator accepts (they check no signatures). */
export const TEST_CREDENTIALS = { accessKeyId: "AKIAEMULATEDREGION00", secretAccessKey: "emulated-region-secret-access-key" };

export interface RegionOptions {
  region?: string;
  /** pending -> running after RunInstances (default 0). */
  bootDelayMs?: number;
  /** pending -> running after StartInstances (default: bootDelayMs). */
  startDelayMs?: number;
  /** stopping -> stopped, shutting-down -> terminated, after the process ended (default 0). */
  stopDelayMs?: number;
  /** SIGTERM -> SIGKILL for an instance's process (default 2000). */
  killGraceMs?: number;
  /** Instance logs `<instance id>.log` (default: a new temporary directory). */
  logDir?: string;
  /** The instances' root volumes, a directory each (default: a new temporary directory, removed by stop()). */
  volumeDir?: string;
  /**
   * What an instance runs (default: what its image runs, `fromImage`); undefined runs nothing. An instance of an image
   * baked in the region runs `bun index.ts` from the image's project directory with the image's configuration file,
   * as the service its unit file describes (restarted as that unit says); one of a stock image given a user script
   * runs the emulated AMI builder (infra/sim/ami-builder.ts), which powers the instance off when it ends; any other,
   * nothing. Before either, at an instance's first boot, cloud-init runs its user script where the image's cloud-init
   * configuration lets it (infra/sim/ec2/cloud-init.ts): on a baked image, by writing the script's here-documents
   * into the root volume.
   */
  instanceProcess?(instance: Instance, fromImage: ProcessSpec | undefined): ProcessSpec | undefined;
  /** Extra environment for every instance process. */
  instanceEnv?: Record<string, string>;
  /** Leave the access keys out of the instances' environment, so the SDK takes the role's from instance metadata. */
  credentialsFromImds?: boolean;
  /**
   * Each instance's calls to S3, SQS, EC2 and IAM are checked against the inline policies of the role in its instance
   * profile, as AWS checks them (default true). Instances sign with their own access key (`instanceAccessKey`).
   */
  enforceInstanceRoles?: boolean;
  stockImages?: string[];
  /** The account's Standard on-demand vCPU quota (default: none); `ec2.capacity` changes it later. */
  vcpuQuota?: number;
  /** false: no default VPC (see Ec2EmulatorOptions). */
  defaultVpc?: boolean;
}

export interface EmulatedRegion {
  region: string;
  endpoints: { s3: string; sqs: string; ec2: string; iam: string };
  /** AWS_REGION, AWS_ENDPOINT_URL (fauxqs) and AWS_ENDPOINT_URL_{S3,SQS,EC2,IAM}, and test credentials: give these to any process using the region. */
  env: Record<string, string>;
  /** For SDK clients in the test process: `new EC2Client({ ...region.clientConfig, endpoint: region.endpoints.ec2 })`. */
  clientConfig: { region: string; credentials: typeof TEST_CREDENTIALS };
  ec2: Ec2Emulator;
  iam: IamEmulator;
  s3sqs: S3SqsEmulator;
  faults: { s3: FaultSwitch; sqs: FaultSwitch; ec2: FaultSwitch; iam: FaultSwitch };
  /** The metadata service endpoint of an instance (each instance has its own). */
  imdsEndpoint(instanceId: string): string | undefined;
  logDir: string;
  /** Kills every instance process and stops every server. */
  stop(): Promise<void>;
}

const AMI_BUILDER = join(REPO_ROOT, "infra/sim/ami-builder.ts");

/** The parts of the test process's environment a child needs to run at all. */
const baseEnv = (): Record<string, string> =>
  Object.fromEntries(["PATH", "HOME", "TMPDIR", "LANG"].flatMap((name) => (process.env[name] === undefined ? [] : [[name, process.env[name]!]])));

export async function startRegion(options: RegionOptions = {}): Promise<EmulatedRegion> {
  const region = options.region ?? "us-east-1";
  const logDir = options.logDir ?? mkdtempSync(join(tmpdir(), "facefleet-region-"));
  const volumeDir = options.volumeDir ?? mkdtempSync(join(tmpdir(), "facefleet-volumes-"));
  const enforce = options.enforceInstanceRoles ?? true;
  /** Access key -> instance id: the instances' callers. */
  const instanceKeys = new Map<string, string>();
  // The emulators are started below; the control reads them only once requests arrive.
  const roleInProfile = (profileName: string) => {
    iam.store.settle();
    return iam.store.roles.get(iam.roleOf(profileName) ?? "");
  };
  const control: AccessControl = accessControl((accessKeyId) => {
    const instance = ec2.store.instances.get(instanceKeys.get(accessKeyId) ?? "");
    if (!instance) return undefined;
    const role = roleInProfile(instance.iamInstanceProfile?.name ?? "");
    return [...(role?.policies.values() ?? [])].map((document) => JSON.parse(document) as PolicyDocument);
  }, (accessKeyId) => {
    const instanceId = instanceKeys.get(accessKeyId);
    return instanceId ? { "ec2:SourceInstanceARN": `arn:aws:ec2:${region}:${ACCOUNT_ID}:instance/${instanceId}` } : {};
  });
  const s3sqs = await startS3AndSqs(enforce ? { control, region } : undefined);
  const refuse = (service: "EC2" | "IAM", request: Request, requests: AccessRequest[]) => {
    const denied = control.denied(accessKeyOf(request), requests);
    if (denied) throw unauthorized(denied, service);
  };
  const iam = startIamEmulator({ authorize: enforce ? (action, _params, request) => refuse("IAM", request, [{ action: `iam:${action}`, resource: "*" }]) : undefined });
  const imds = new Map<string, ImdsServer>();
  const regionEnv: Record<string, string> = {
    AWS_REGION: region,
    AWS_ACCESS_KEY_ID: TEST_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: TEST_CREDENTIALS.secretAccessKey,
    // Any other service (fauxqs also answers STS) goes to fauxqs rather than to AWS.
    AWS_ENDPOINT_URL: s3sqs.endpoint,
    AWS_ENDPOINT_URL_S3: s3sqs.endpoint,
    AWS_ENDPOINT_URL_SQS: s3sqs.endpoint,
    AWS_ENDPOINT_URL_IAM: iam.endpoint,
  };
  const ec2 = startEc2Emulator({
    region,
    bootDelayMs: options.bootDelayMs,
    startDelayMs: options.startDelayMs,
    stopDelayMs: options.stopDelayMs,
    killGraceMs: options.killGraceMs,
    vcpuQuota: options.vcpuQuota,
    defaultVpc: options.defaultVpc,
    instanceProfileCreatedAt: (name) => iam.store.instanceProfiles.get(name)?.createDate.getTime(),
    // EC2 creates the grant on the volume's key as the caller, through EC2, for an AWS resource. An instance's role
    // decides by its IAM policy; the operator's credentials have none here, so the key's policy decides.
    mayCreateGrant: (request, keyArn) => {
      const accessKeyId = accessKeyOf(request);
      if (!instanceKeys.has(accessKeyId ?? "")) return ec2.ebsEncryption.operatorMayCreateGrant !== false;
      return !enforce || !control.denied(accessKeyId, [
        { action: "kms:CreateGrant", resource: keyArn, context: { "kms:ViaService": `ec2.${region}.amazonaws.com`, "kms:GrantIsForAWSResource": "true" } },
      ]);
    },
    logDir,
    volumeDir,
    stockImages: options.stockImages,
    onLaunch(instance) {
      const accessKeyId = instanceAccessKey(instance.id);
      instanceKeys.set(accessKeyId, instance.id);
      const credentials = { ...TEST_CREDENTIALS, accessKeyId };
      imds.set(instance.id, startImds({ instance, region, tags: () => ec2.store.tagsOf(instance.id), roleOf: iam.roleOf, credentials }));
    },
    authorize: enforce
      ? (action, params, request, store) => {
          const roleArnOfProfile = (profileName: string) => {
            const role = roleInProfile(profileName);
            return role && roleArn(role);
          };
          refuse("EC2", request, ec2Access(action, params, { store, region, roleArnOfProfile }));
        }
      : undefined,
    processFor(instance) {
      const fromImage = imageProcess(instance);
      const spec = options.instanceProcess ? options.instanceProcess(instance, fromImage) : fromImage;
      if (!spec) return undefined;
      const env: Record<string, string> = {
        ...baseEnv(),
        ...regionEnv,
        AWS_ACCESS_KEY_ID: instanceAccessKey(instance.id),
        AWS_ENDPOINT_URL_EC2: ec2.endpoint,
        AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.get(instance.id)!.endpoint,
        // The emulated instances' network is this machine's loopback (a baked image listens on every interface).
        FACEFLEET_HOST: "127.0.0.1",
      };
      if (options.credentialsFromImds) {
        delete env.AWS_ACCESS_KEY_ID;
        delete env.AWS_SECRET_ACCESS_KEY;
      }
      return { ...spec, env: { ...env, ...options.instanceEnv, ...spec.env } };
    },
  });
  /** cloud-init runs user data once per instance. */
  const bootedOnce = new Set<string>();
  function imageProcess(instance: Instance): ProcessSpec | undefined {
    const volume = ec2.volumeOf(instance);
    const rootDir = ec2.store.images.get(instance.imageId)?.rootDir;
    const userData = instance.userData === undefined || bootedOnce.has(instance.id) ? undefined : Buffer.from(instance.userData, "base64").toString();
    bootedOnce.add(instance.id);
    const script = userScript(userData, cloudConfigOf(rootDir));
    if (rootDir) {
      for (const { path, content } of script ? hereDocuments(script) : []) {
        mkdirSync(dirname(join(volume, path)), { recursive: true });
        writeFileSync(join(volume, path), content);
      }
      const unitFile = join(volume, SYSTEMD_UNIT_FILE);
      if (!existsSync(unitFile)) return undefined;
      // As the image's environment file names it for the unit.
      return { command: [process.execPath, "index.ts"], cwd: join(volume, PROJECT_DIR), env: { FACEFLEET_CONFIG: join(volume, CONFIG_FILE) }, service: serviceRestartOf(readFileSync(unitFile, "utf8")) };
    }
    if (script === undefined) return undefined;
    mkdirSync(volume, { recursive: true });
    return { command: [process.execPath, AMI_BUILDER], cwd: volume };
  }
  return {
    region,
    endpoints: { s3: s3sqs.endpoint, sqs: s3sqs.endpoint, ec2: ec2.endpoint, iam: iam.endpoint },
    env: { ...regionEnv, AWS_ENDPOINT_URL_EC2: ec2.endpoint },
    clientConfig: { region, credentials: TEST_CREDENTIALS },
    ec2,
    iam,
    s3sqs,
    faults: { ...s3sqs.faults, ec2: ec2.faults, iam: iam.faults },
    imdsEndpoint: (instanceId) => imds.get(instanceId)?.endpoint,
    logDir,
    async stop() {
      await ec2.stop();
      await Promise.all([...imds.values()].map((server) => server.stop()));
      await Promise.all([iam.stop(), s3sqs.stop()]);
      if (!options.volumeDir) rmSync(volumeDir, { recursive: true, force: true });
    },
  };
}

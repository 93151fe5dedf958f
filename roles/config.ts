/**
 * All configuration in one TypeBox schema: environment variables (FACEFLEET_<SETTING_IN_SNAKE_CASE>, nested
 * settings joined with "_": FACEFLEET_MODEL_EMBEDDER) over an optional JSON file (FACEFLEET_CONFIG) over defaults.
 * Cloud endpoints, region and credentials are never here: they come from the AWS SDK's own standard settings.
 */
import { Type, type Static, type TObject, type TSchema, Kind } from "@sinclair/typebox";
import { Value } from "@sinclair/typebox/value";
import { readFileSync } from "node:fs";
import { ModelConfigSchema } from "../model/config.ts";
import { AnswerModeSchema, API_RESULT_EXPIRY_DAYS, API_RESULT_KEY_PREFIX, EMBEDDING_EXPIRY_DAYS, EMBEDDING_KEY_PREFIX, UPLOAD_KEY_PREFIXES, WEB_PORT } from "./deployment.ts";

export const RoleSchema = Type.Union([Type.Literal("web"), Type.Literal("app"), Type.Literal("controller"), Type.Literal("all")]);
export type Role = Static<typeof RoleSchema>;

const name = (description: string) => Type.Optional(Type.String({ minLength: 1, description }));

export const ConfigSchema = Type.Object({
  role: Type.Optional(
    Type.String({
      minLength: 1,
      description: "Roles this process plays: web, app, controller, all, or several joined by + (web+controller); unset: the instance's Role tag, else all",
    }),
  ),
  instanceMetadata: Type.Union([Type.Literal("optional"), Type.Literal("required")], {
    default: "optional",
    description: "required: the process runs on EC2 (the baked image sets it), so a metadata service that does not answer is waited for, then an error, never the embedded mode",
  }),
  prefix: Type.String({ default: "facefleet", pattern: "^[a-z0-9][a-z0-9-]{0,40}$", description: "Resource name prefix and deployment tag" }),
  inBucket: name("Input bucket; default <prefix>-in-bucket"),
  outBucket: name("Output bucket; default <prefix>-out-bucket"),
  galleryBucket: name("Bucket holding the gallery; default the output bucket"),
  reportsBucket: name("Bucket of the app instances' job reports, apart from the data buckets; default <prefix>-reports-bucket"),
  reqQueue: name("Request queue; default <prefix>-req-queue"),
  respQueue: name("Response queue; default <prefix>-resp-queue"),
  deadLetterQueue: name("Dead-letter queue; default <prefix>-dlq"),
  host: Type.String({ default: "127.0.0.1", description: "Address the web role listens on: this machine only by default; 0.0.0.0 opens it to the network (the baked image sets 0.0.0.0, as on EC2 the security group says who may reach it)" }),
  launchTemplate: name("EC2 launch template for app instances; default <prefix>-instance"),
  appNetwork: Type.Optional(
    Type.Object(
      {
        subnetIds: Type.Array(Type.String({ pattern: "^subnet-[0-9a-z]+$" }), { minItems: 1, description: "Comma-separated in the environment" }),
        securityGroupId: Type.String({ pattern: "^sg-[0-9a-z]+$", description: "The group each app instance's network interface names" }),
      },
      { description: "Subnets (one per availability zone) the controller spreads app instances over, evenly, leaving out a zone out of machines; bake-ami writes bootstrap's. Unset: the launch template's subnet" },
    ),
  ),
  appImageId: Type.Optional(Type.String({ minLength: 1, description: "AMI for app instances launched by the controller; default the launch template's" })),
  s3ForcePathStyle: Type.Boolean({ default: false, description: "Path-style S3 addressing (S3-compatible endpoints)" }),
  localBootDelayMs: Type.Integer({ minimum: 0, default: 0, description: "Embedded mode: how long a local app instance takes to start" }),
  port: Type.Integer({ minimum: 0, maximum: 65535, default: WEB_PORT }),
  dataDir: Type.String({ default: "./data", description: "Embedded mode: where local buckets live" }),
  maxUploadBytes: Type.Integer({ minimum: 1, default: 10 * 1024 * 1024, description: "Most bytes of one uploaded file; in an enrollment of several photos, each photo on its own" }),
  maxBodyBytes: Type.Integer({ minimum: 1, default: 50 * 1024 * 1024, description: "Most bytes of one request body, all its files together; a body past it is refused whole" }),
  maxImportBytes: Type.Integer({
    minimum: 1,
    default: 4 * 1024 ** 3,
    description:
      "Most bytes of one POST /v1/gallery/import body (admin only, read as a stream, not held to maxBodyBytes), else 413 import_too_large; the default takes an export of 1M 128-d faces (2.8 GB) in one request",
  }),
  concurrentUploads: Type.Integer({
    minimum: 1,
    default: 16,
    description: "Upload bodies the web role reads at once, in each of its two pools (the open classic POST /, the authenticated /v1 routes); more wait for a slot",
  }),
  uploadsPerClient: Type.Integer({
    minimum: 1,
    default: 4,
    description: "Upload bodies one client address reads at once; its further requests wait (other addresses' overtake them), they are not refused",
  }),
  uploadWaitMs: Type.Integer({ minimum: 0, default: 60_000, description: "How long a request waits for an upload slot before it gets 503 busy" }),
  uploadQueueLength: Type.Integer({ minimum: 0, default: 200, description: "Requests that may wait for an upload slot; one more gets 503 busy at once" }),
  bodyTimeoutMs: Type.Integer({ minimum: 1, default: 30_000, description: "How long an upload's body may take once its reading starts, before 408 body_timeout" }),
  minBodyRate: Type.Integer({
    minimum: 0,
    default: 64 * 1024,
    description: "Bytes a second an upload's body must average once bodyRateGraceMs has passed (less a 64 KiB allowance), else 408 body_timeout; 0: no minimum",
  }),
  bodyRateGraceMs: Type.Integer({ minimum: 0, default: 1000, description: "Time an upload's body has before minBodyRate applies" }),
  trustProxy: Type.Boolean({
    default: false,
    description: "true: a proxy is in front, and the client of a request is the address it appended last to X-Forwarded-For; false: the connection's peer (X-Forwarded-For ignored)",
  }),
  classicRateLimit: Type.Number({
    minimum: 0,
    default: 0,
    description: "Requests a second one client address may send to the classic POST / (bursts of a second's worth), past it 429 rate_limited; 0: no limit (the course's grader sends its whole workload from one address)",
  }),
  requestTimeoutMs: Type.Integer({ minimum: 1, default: 60_000, description: "A request waiting longer gets 504" }),
  galleryEraseWithinMs: Type.Integer({
    minimum: 10 * 60_000,
    default: 24 * 60 * 60_000,
    description: "Most time a removed face's embedding stays in the gallery's storage (compaction rewrites the segments holding it); ?erase=now on a removal erases at once",
  }),
  uploadRetentionDays: Type.Integer({
    minimum: 0,
    // An S3 lifecycle rule's Days is an xs:int: more is refused (MalformedXML) by bootstrap's PutBucketLifecycleConfiguration.
    maximum: 2 ** 31 - 1,
    default: 0,
    description: "Days an uploaded photo stays in the input bucket, then it is deleted (an S3 lifecycle rule set by bootstrap; embedded, a sweep of the data directory); 0: kept until removed. Results and the gallery are not touched",
  }),
  answerMode: Type.Union(AnswerModeSchema.anyOf, {
    default: "closed",
    description: "closed: the nearest enrolled person; open: Unknown below the model's threshold",
  }),
  apiToken: Type.Optional(
    Type.String({
      minLength: 1,
      description: "Bearer token of the subjects API and every admin route; default: generated into <dataDir>/api-token (embedded), read from the input bucket (EC2)",
    }),
  ),
  classicAuth: Type.Boolean({ default: false, description: "true: the classic POST / needs the bearer token too (the course's grader sends none)" }),
  tlsCertFile: Type.Optional(Type.String({ minLength: 1, description: "PEM certificate the web role serves HTTPS with; needs tlsKeyFile" })),
  tlsKeyFile: Type.Optional(Type.String({ minLength: 1, description: "PEM private key of tlsCertFile" })),
  visibilityTimeoutSeconds: Type.Integer({
    minimum: 1,
    default: 10,
    description: "A job held by an instance that died (no heartbeat, every half of this) is delivered again after this long",
  }),
  jobDeadlineMs: Type.Integer({ minimum: 1, default: 60_000, description: "An app instance abandons a job it has worked on this long (its inference worker is replaced) and hands it back for another instance" }),
  maxReceives: Type.Integer({ minimum: 1, default: 3, description: "Receives before a job goes to the dead-letter queue" }),
  maxRedrives: Type.Integer({
    minimum: 0,
    default: 1,
    description: "Times the controller sends a dead-lettered job (its holders died maxReceives times) to the request queue again before it answers job_failed and keeps it for the operator. Each try of a job that fails every time counts as a fault of the instance that held it: keep it low",
  }),
  maxAppInstances: Type.Integer({ minimum: 0, maximum: 15, default: 15 }),
  slotsPerInstance: Type.Integer({ minimum: 1, default: 1, description: "Jobs one app instance works on at once" }),
  poolPolicy: Type.Union([Type.Literal("warm"), Type.Literal("cold")], {
    default: "warm",
    description: "warm: app instances are started and stopped; cold: launched and terminated",
  }),
  controllerIntervalMs: Type.Integer({ minimum: 10, default: 250 }),
  scaleInAfterMs: Type.Integer({ minimum: 0, default: 1000, description: "An empty queue for this long scales the fleet to 0" }),
  noProgressAfterMs: Type.Integer({
    minimum: 1,
    default: 180_000,
    description: "The controller replaces the whole fleet when no job has been answered for this long while the queue holds jobs",
  }),
  analysisCacheEntries: Type.Integer({ minimum: 0, default: 10_000, description: "Images remembered by content hash so identical ones are not recomputed; 0 = off" }),
  model: ModelConfigSchema,
});

export type Config = Static<typeof ConfigSchema>;

/** The settings each role reads: a role is handed its slice of the configuration, not the whole of it. */
const WEB_SETTINGS = ["host", "port", "dataDir", "maxUploadBytes", "maxBodyBytes", "maxImportBytes", "concurrentUploads", "uploadWaitMs", "uploadQueueLength", "bodyTimeoutMs", "uploadsPerClient", "minBodyRate", "bodyRateGraceMs", "trustProxy", "classicRateLimit", "requestTimeoutMs", "galleryEraseWithinMs", "answerMode", "apiToken", "classicAuth", "tlsCertFile", "tlsKeyFile"] as const;
const APP_SETTINGS = ["visibilityTimeoutSeconds", "maxReceives", "jobDeadlineMs"] as const;
const CONTROLLER_SETTINGS = ["maxAppInstances", "slotsPerInstance", "poolPolicy", "scaleInAfterMs", "controllerIntervalMs", "noProgressAfterMs", "maxRedrives"] as const;
export type WebConfig = Pick<Config, (typeof WEB_SETTINGS)[number]>;
export type AppConfig = Pick<Config, (typeof APP_SETTINGS)[number]>;
export type ControllerConfig = Pick<Config, (typeof CONTROLLER_SETTINGS)[number]>;

function slice<K extends keyof Config>(config: Config, keys: readonly K[]): Pick<Config, K> {
  return Object.fromEntries(keys.map((key) => [key, config[key]])) as Pick<Config, K>;
}
export const webConfig = (config: Config): WebConfig => slice(config, WEB_SETTINGS);
export const appConfig = (config: Config): AppConfig => slice(config, APP_SETTINGS);
export const controllerConfig = (config: Config): ControllerConfig => slice(config, CONTROLLER_SETTINGS);

export interface ResourceNames {
  inBucket: string;
  outBucket: string;
  galleryBucket: string;
  reportsBucket: string;
  reqQueue: string;
  respQueue: string;
  deadLetterQueue: string;
  launchTemplate: string;
}

export function resourceNames(config: Config): ResourceNames {
  const p = config.prefix;
  const outBucket = config.outBucket ?? `${p}-out-bucket`;
  return {
    inBucket: config.inBucket ?? `${p}-in-bucket`,
    outBucket,
    galleryBucket: config.galleryBucket ?? outBucket,
    reportsBucket: config.reportsBucket ?? `${p}-reports-bucket`,
    reqQueue: config.reqQueue ?? `${p}-req-queue`,
    respQueue: config.respQueue ?? `${p}-resp-queue`,
    deadLetterQueue: config.deadLetterQueue ?? `${p}-dlq`,
    launchTemplate: config.launchTemplate ?? `${p}-instance`,
  };
}

/** Objects deleted `days` after they were written: by S3 lifecycle rules on AWS (infra/plan.ts), by the file bucket's sweep embedded. */
export interface ObjectExpiry {
  bucket: string;
  prefix: string;
  days: number;
  what: "embeddings" | "api-results" | "uploads";
}

export function objectExpiries(config: Config): ObjectExpiry[] {
  const names = resourceNames(config);
  const always: ObjectExpiry[] = [
    { bucket: names.galleryBucket, prefix: EMBEDDING_KEY_PREFIX, days: EMBEDDING_EXPIRY_DAYS, what: "embeddings" },
    { bucket: names.outBucket, prefix: API_RESULT_KEY_PREFIX, days: API_RESULT_EXPIRY_DAYS, what: "api-results" },
  ];
  if (config.uploadRetentionDays === 0) return always;
  return [...always, ...UPLOAD_KEY_PREFIXES.map((prefix): ObjectExpiry => ({ bucket: names.inBucket, prefix, days: config.uploadRetentionDays, what: "uploads" }))];
}

export class ConfigError extends Error {
  override name = "ConfigError";
}

const ENV_PREFIX = "FACEFLEET_";

/** Reads the settings of one object schema from the environment, nested objects under their own prefix. */
function fromEnvironment(schema: TObject, env: Record<string, string | undefined>, prefix: string): Record<string, unknown> {
  const values: Record<string, unknown> = {};
  for (const [key, property] of Object.entries(schema.properties) as [string, TSchema][]) {
    const envName = prefix + key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase();
    if (property[Kind] === "Object") {
      const nested = fromEnvironment(property as TObject, env, `${envName}_`);
      if (Object.keys(nested).length > 0) values[key] = nested;
    } else if (property[Kind] === "Array" && env[envName] !== undefined) {
      values[key] = env[envName].split(",").map((item) => item.trim()).filter((item) => item.length > 0);
    } else if (env[envName] !== undefined) {
      values[key] = env[envName];
    }
  }
  return values;
}

function merge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const merged = { ...base };
  for (const [key, value] of Object.entries(over)) {
    const current = merged[key];
    merged[key] =
      isPlainObject(current) && isPlainObject(value) ? merge(current, value) : value;
  }
  return merged;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Environment over config file over defaults; throws a ConfigError naming every bad setting. */
export function loadConfig(env: Record<string, string | undefined> = process.env, overrides: Partial<Config> = {}): Config {
  let fileValues: Record<string, unknown> = {};
  const file = env[`${ENV_PREFIX}CONFIG`];
  if (file) {
    try {
      fileValues = JSON.parse(readFileSync(file, "utf8"));
    } catch (error) {
      throw new ConfigError(`cannot read config file ${file}: ${(error as Error).message}`);
    }
  }
  const raw = merge(merge(fileValues, fromEnvironment(ConfigSchema, env, ENV_PREFIX)), overrides as Record<string, unknown>);
  const converted = Value.Convert(ConfigSchema, Value.Default(ConfigSchema, raw));
  const problems = [...Value.Errors(ConfigSchema, converted)].map((e) => {
    const setting = e.path.replace(/^\//, "").replaceAll("/", ".") || "(root)";
    return `${setting} (${ENV_PREFIX}${setting.replace(/[A-Z]/g, (c) => `_${c}`).replaceAll(".", "_").toUpperCase()}): ${e.message}`;
  });
  const config = converted as Config;
  if (problems.length === 0 && config.maxUploadBytes > config.maxBodyBytes) {
    problems.push(`maxUploadBytes (${ENV_PREFIX}MAX_UPLOAD_BYTES): ${config.maxUploadBytes} is more than maxBodyBytes (${ENV_PREFIX}MAX_BODY_BYTES), ${config.maxBodyBytes}: no file that large could arrive`);
  }
  if (problems.length === 0 && config.uploadRetentionDays > 0) {
    // The uploads' rules take every key beginning with a hex character, as result keys (file names), `api/` and
    // `embeddings/` do: every other bucket of the deployment must be another bucket.
    const { inBucket, ...others } = resourceNames(config);
    for (const [setting, name] of Object.entries(others)) {
      if (setting.endsWith("Bucket") && name === inBucket) {
        problems.push(`uploadRetentionDays (${ENV_PREFIX}UPLOAD_RETENTION_DAYS): the input bucket ${inBucket} is also the ${setting}, whose objects the retention of uploads would delete: give it a bucket of its own`);
      }
    }
  }
  if (problems.length > 0) throw new ConfigError(`invalid configuration:\n  ${problems.join("\n  ")}`);
  return config;
}

/**
 * What every infra script shares: its command-line options (one TypeBox schema), the deployment's configuration,
 * printing each step as it runs, and a non-zero exit code on failure.
 */
import { Type, type Static } from "@sinclair/typebox";
import { Value } from "@sinclair/typebox/value";
import { parseArgs } from "node:util";
import { createInterface } from "node:readline/promises";
import { loadConfig, type Config } from "../roles/config.ts";

export const InfraOptionsSchema = Type.Object({
  dryRun: Type.Boolean({ default: false, description: "Print the plan, change nothing" }),
  yes: Type.Boolean({ default: false, description: "teardown: do not ask for confirmation" }),
  stateFile: Type.Optional(Type.String({ minLength: 1, description: "Default .facefleet/<prefix>.json" })),
  vpcId: Type.Optional(Type.String({ pattern: "^vpc-[0-9a-f]+$", description: "bootstrap: the VPC of the security group and instances; default the account's default VPC" })),
  subnetIds: Type.Optional(
    Type.String({ pattern: "^subnet-[0-9a-f]+(,subnet-[0-9a-f]+)*$", description: "bootstrap: comma-separated subnets of that VPC for the instances; default all of its subnets (none for the default VPC)" }),
  ),
  ingressCidr: Type.Optional(Type.String({ pattern: "^\\d{1,3}(\\.\\d{1,3}){3}/\\d{1,2}$", description: "bootstrap, required: who may reach port 8000" })),
  appInstanceType: Type.String({ default: "t3.small" }),
  webInstanceType: Type.String({ default: "t3.micro" }),
  builderInstanceType: Type.String({ default: "t3.small" }),
  image: Type.Optional(Type.String({ pattern: "^ami-[0-9a-z]+$", description: "bake-ami: the stock Linux image to start from" })),
  pool: Type.Union([Type.Literal("warm"), Type.Literal("cold")], { default: "warm", description: "launch: stopped app instances ready to start, or none" }),
  poolSize: Type.Optional(Type.Integer({ minimum: 0, maximum: 15, description: "launch: warm pool size; default maxAppInstances" })),
  colocateController: Type.Boolean({ default: true, description: "launch: run the controller on the web instance (Role=web+controller)" }),
  bakeTimeoutSeconds: Type.Integer({ minimum: 1, default: 1800 }),
  pollSeconds: Type.Number({ minimum: 0, default: 5 }),
  convergeSeconds: Type.Number({
    minimum: 0,
    default: 900,
    description: "bootstrap: how long to read back what it changed (SQS documents up to 15 minutes for MessageRetentionPeriod)",
  }),
});
export type InfraOptions = Static<typeof InfraOptionsSchema>;

const FLAGS = {
  "dry-run": { type: "boolean" },
  yes: { type: "boolean" },
  "state-file": { type: "string" },
  "vpc-id": { type: "string" },
  "subnet-ids": { type: "string" },
  "ingress-cidr": { type: "string" },
  "app-instance-type": { type: "string" },
  "web-instance-type": { type: "string" },
  "builder-instance-type": { type: "string" },
  image: { type: "string" },
  pool: { type: "string" },
  "pool-size": { type: "string" },
  "colocate-controller": { type: "string" },
  "bake-timeout-seconds": { type: "string" },
  "poll-seconds": { type: "string" },
  "converge-seconds": { type: "string" },
} as const;

export class UsageError extends Error {
  override name = "UsageError";
}

/** `--pool-size 3` -> { poolSize: 3 }, validated against the schema with messages naming the flag. */
export function parseOptions(argv: string[]): InfraOptions {
  let values: Record<string, unknown>;
  try {
    values = parseArgs({ args: argv, options: FLAGS, strict: true, allowPositionals: false }).values;
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const raw = Object.fromEntries(Object.entries(values).map(([flag, value]) => [flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase()), value]));
  const options = Value.Convert(InfraOptionsSchema, Value.Default(InfraOptionsSchema, raw));
  const problems = [...Value.Errors(InfraOptionsSchema, options)].map(
    (e) => `--${e.path.slice(1).replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}: ${e.message}`,
  );
  if (problems.length > 0) throw new UsageError(problems.join("\n"));
  return options as InfraOptions;
}

export interface Output {
  /** Prints the label, runs the step, prints how it went; rethrows failures after printing them. */
  step<T>(label: string, run: () => Promise<T>): Promise<T>;
  line(text: string): void;
}

export function consoleOutput(write: (text: string) => void = (text) => process.stdout.write(text)): Output {
  return {
    async step(label, run) {
      const started = performance.now();
      try {
        const result = await run();
        write(`  ok    ${label} (${Math.round(performance.now() - started)} ms)\n`);
        return result;
      } catch (error) {
        write(`  FAIL  ${label}: ${(error as Error).message}\n`);
        throw error;
      }
    },
    line: (text) => write(`${text}\n`),
  };
}

export interface ScriptContext {
  config: Config;
  options: InfraOptions;
  out: Output;
}

/** Runs a script's body with its configuration and options; any failure ends the process with exit code 1 (2 for usage). */
export async function runScript(name: string, body: (context: ScriptContext) => Promise<void>): Promise<void> {
  const out = consoleOutput();
  try {
    const options = parseOptions(process.argv.slice(2));
    const config = loadConfig();
    out.line(`${name}: deployment '${config.prefix}'${options.dryRun ? " (dry run: nothing will be changed)" : ""}`);
    await body({ config, options, out });
  } catch (error) {
    const usage = error instanceof UsageError || (error as Error).name === "ConfigError";
    process.stderr.write(`${name} failed: ${(error as Error).message}\n`);
    process.exit(usage ? 2 : 1);
  }
}

export async function confirm(question: string): Promise<boolean> {
  const prompt = createInterface({ input: process.stdin, output: process.stdout });
  try {
    return /^y(es)?$/i.test((await prompt.question(`${question} [y/N] `)).trim());
  } finally {
    prompt.close();
  }
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls `check` until it returns a value; throws after `timeoutSeconds` naming what it waited for (as it was last). */
export async function waitUntil<T>(what: string | (() => string), check: () => Promise<T | undefined>, options: { timeoutSeconds: number; pollSeconds: number }): Promise<T> {
  const deadline = Date.now() + options.timeoutSeconds * 1000;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() >= deadline) throw new Error(`timed out after ${options.timeoutSeconds} s waiting for ${typeof what === "string" ? what : what()}`);
    await sleep(options.pollSeconds * 1000);
  }
}

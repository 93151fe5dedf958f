/**
 * The AMI builder in the emulated region, run as the builder instance's process with its root volume as the working
 * directory: cloud-init's part. It reads its user data from instance metadata for the tarball and the marker objects
 * the real script's commands name, unpacks the tarball into the volume at PROJECT_DIR, runs the same install steps
 * there (PROJECT_INSTALL_STEPS), writes the files the user data writes (the configuration, the environment file,
 * the unit) into the volume, reports `done`, or `failed` with its log, as the user data does, and powers off
 * (exits). Left out: dnf, Bun (this process's Bun stands for the pinned one), the service user, and systemd.
 */
import { MetadataService } from "@aws-sdk/ec2-metadata-service";
import { GetObjectCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { mkdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { PROJECT_DIR, PROJECT_INSTALL_STEPS } from "../user-data.ts";
import { hereDocuments } from "./ec2/cloud-init.ts";

/** The S3 object a line of the user data names, by the pattern that precedes and follows its `s3://` URL. */
function objectNamed(userData: string, pattern: RegExp): { Bucket: string; Key: string } {
  const url = pattern.exec(userData)?.[1];
  const match = url && /^s3:\/\/([^/]+)\/(.+)$/.exec(url);
  if (!match) throw new Error(`the builder's user data has no line matching ${pattern}`);
  return { Bucket: match[1]!, Key: match[2]! };
}

async function run(command: string[], cwd: string, log: string[]): Promise<void> {
  log.push(`$ ${command.join(" ")}`);
  const env = { ...process.env, PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ""}` };
  const child = Bun.spawn(command, { cwd, env, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  log.push(stdout, stderr);
  if (code !== 0) throw new Error(`${command.join(" ")} exited ${code}`);
}

const metadata = new MetadataService({ ec2MetadataV1Disabled: true });
const userData = await metadata.request("/latest/user-data", {});
const tarball = objectNamed(userData, /^aws s3 cp (s3:\/\/\S+) \/tmp\/facefleet\.tar\.gz$/m);
const done = objectNamed(userData, /^echo ok \| aws s3 cp - (s3:\/\/\S+)$/m);
const failed = objectNamed(userData, /^\s*aws s3 cp \/var\/log\/facefleet-bake\.log (s3:\/\/\S+) \|\| true$/m);

const s3 = new S3Client({});
const log: string[] = [];
try {
  const projectDir = join(process.cwd(), PROJECT_DIR);
  const download = join(process.cwd(), "tmp/facefleet.tar.gz");
  mkdirSync(projectDir, { recursive: true });
  const object = await s3.send(new GetObjectCommand(tarball));
  await Bun.write(download, await object.Body!.transformToByteArray());
  await run(["tar", "-xzf", download, "-C", projectDir, "--no-same-owner"], projectDir, log);
  rmSync(download);
  await run(["bash", "-euo", "pipefail", "-c", PROJECT_INSTALL_STEPS.join("\n")], projectDir, log);
  for (const { path, content } of hereDocuments(userData)) await Bun.write(join(process.cwd(), path), content);
  await s3.send(new PutObjectCommand({ ...done, Body: "ok" }));
  console.log(log.join("\n"));
} catch (error) {
  log.push(String(error));
  console.error(log.join("\n"));
  await s3.send(new PutObjectCommand({ ...failed, Body: log.join("\n") }));
  process.exitCode = 1;
} finally {
  s3.destroy();
}

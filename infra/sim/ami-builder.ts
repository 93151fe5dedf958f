/**
 * The AMI builder's part in the emulated region, run as the builder instance's process: where the real user data
 * installs Bun, the project and its models (the repository already has them here), it reports success the way that
 * user data does, a `done` object beside the tarball its user data names, and powers off (exits). Like the real
 * builder it may only read its tarball and write its marker (the builder role), so it reads the keys from its user data.
 */
import { MetadataService } from "@aws-sdk/ec2-metadata-service";
import { HeadObjectCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";

const userData = await new MetadataService({ ec2MetadataV1Disabled: true }).request("/latest/user-data", {});
const tarball = /^aws s3 cp s3:\/\/([^/\s]+)\/(\S+) \/tmp\/facefleet\.tar\.gz$/m.exec(userData);
if (!tarball) throw new Error("the builder's user data names no tarball");
const [, Bucket = "", tarballKey = ""] = tarball;
const s3 = new S3Client({});
await s3.send(new HeadObjectCommand({ Bucket, Key: tarballKey }));
await s3.send(new PutObjectCommand({ Bucket, Key: tarballKey.slice(0, tarballKey.lastIndexOf("/") + 1) + "done", Body: "ok" }));
s3.destroy();

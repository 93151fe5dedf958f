/**
 * The AMI builder's part in the emulated region, run as the builder instance's process: where the real user data
 * installs Bun, the project and its models (the repository already has them here), it reports success the way that
 * user data does, a `done` object beside the tarball in the input bucket, and powers off (exits).
 */
import { ListObjectsV2Command, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";

const TARBALL = "facefleet.tar.gz";
const bucket = `${process.env.FACEFLEET_PREFIX}-in-bucket`;
const s3 = new S3Client({});
const { Contents } = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: "_bake/" }));
const tarballs = (Contents ?? []).flatMap((object) => (object.Key?.endsWith(`/${TARBALL}`) ? [object.Key] : []));
for (const key of tarballs) await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key.slice(0, -TARBALL.length) + "done", Body: "ok" }));
s3.destroy();
if (tarballs.length === 0) throw new Error(`no ${TARBALL} under s3://${bucket}/_bake/`);

/**
 * ExpectedBucketOwner on every S3 call that names a bucket. Bucket names are global: once a deployment is torn down,
 * anyone may create buckets of its names, and a deployment made again under the same prefix would then read and write
 * a stranger's buckets. With the header, S3 answers 403 AccessDenied when the bucket is not the account's.
 */
import type { S3Client } from "@aws-sdk/client-s3";

/** The calls that name no bucket of someone else's: the account's own listing, and creating one (which names the owner). */
const NO_OWNER_TO_EXPECT = new Set(["ListBucketsCommand", "CreateBucketCommand"]);

export function expectBucketOwner(client: S3Client, accountId: () => Promise<string>): void {
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const request = args.request as { headers?: Record<string, string> };
      if (request.headers && !NO_OWNER_TO_EXPECT.has(context.commandName ?? "")) request.headers["x-amz-expected-bucket-owner"] = await accountId();
      return next(args);
    },
    { step: "build", name: "facefleetExpectedBucketOwner" },
  );
}

// The job-report contract against files on disk and against S3 (fauxqs), where the key is the instance's ARN.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";
import { awsCloud } from "../../roles/cloud/index.ts";
import { BucketJobReports, instanceArnReportKey } from "../../roles/cloud/job-reports.ts";
import { resourceNames } from "../../roles/config.ts";
import { freshConfig, freshLocalCloud, startAwsTestRegion, type AwsTestRegion } from "./clouds.ts";
import { reportsContract } from "./reports.contract.ts";

// Servers, processes or networks: a test may take seconds on a loaded 2-core CI machine.
setDefaultTimeout(30_000);

describe("local job reports", () => {
  reportsContract(async () => freshLocalCloud(freshConfig()).reports);
});

describe("S3 job reports", () => {
  let aws: AwsTestRegion;
  beforeAll(async () => {
    aws = await startAwsTestRegion();
  });
  afterAll(() => aws?.stop());

  const ARN_PREFIX = "arn:aws:ec2:us-east-1:123456789012:instance/";

  async function s3Reports() {
    const config = freshConfig();
    const name = resourceNames(config).reportsBucket;
    await new S3Client({ forcePathStyle: true }).send(new CreateBucketCommand({ Bucket: name }));
    const bucket = awsCloud(config).blobs.bucket(name);
    return { bucket, reports: new BucketJobReports(bucket, instanceArnReportKey(async () => ARN_PREFIX)) };
  }

  reportsContract(async () => (await s3Reports()).reports);

  test("a report is the object instance-reports/<instance ARN>, which IAM can grant as ${ec2:SourceInstanceARN}; a malformed or misplaced one counts as none", async () => {
    const { bucket, reports } = await s3Reports();
    await reports.write({ instanceId: "i-0000000000000000e", jobs: 1, at: 5 });
    expect(await bucket.get(`instance-reports/${ARN_PREFIX}i-0000000000000000e`)).toBeDefined();
    await bucket.put(`instance-reports/${ARN_PREFIX}i-0000000000000000e`, "not json");
    await bucket.put(`instance-reports/${ARN_PREFIX}i-0000000000000000f`, JSON.stringify({ instanceId: "i-0000000000000000e", jobs: 4, at: 5 }));
    expect(await reports.read(["i-0000000000000000e", "i-0000000000000000f"])).toEqual([]);
  });
});

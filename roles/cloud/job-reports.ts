/**
 * Job reports as one small JSON object per instance in the reports bucket, under JOB_REPORTS_PREFIX, on S3 (strongly
 * consistent: a read after a write sees it). The key ends with the instance's ARN, so IAM can let each app instance
 * write its own report and no other. The embedded mode keeps them in its process (local/memory-reports.ts).
 */
import { instanceIdentity } from "./aws/instance-identity.ts";
import { JOB_REPORTS_PREFIX } from "../deployment.ts";
import { decodeMessage, JobReportSchema, MessageFormatError, type JobReport } from "../messages.ts";
import type { Bucket, JobReports } from "./types.ts";

export type ReportKey = (instanceId: string) => Promise<string>;

export class BucketJobReports implements JobReports {
  constructor(
    private readonly bucket: Bucket,
    private readonly keyOf: ReportKey,
  ) {}

  async write(report: JobReport): Promise<void> {
    await this.bucket.put(await this.keyOf(report.instanceId), JSON.stringify(report), { contentType: "application/json" });
  }

  async read(instanceIds: string[]): Promise<JobReport[]> {
    const reports = await Promise.all(instanceIds.map((id) => this.readOne(id)));
    return reports.filter((report): report is JobReport => report !== undefined);
  }

  async remove(instanceId: string): Promise<void> {
    await this.bucket.delete(await this.keyOf(instanceId));
  }

  /** A report that is not one (or names another instance) counts as none. */
  private async readOne(instanceId: string): Promise<JobReport | undefined> {
    const bytes = await this.bucket.get(await this.keyOf(instanceId));
    if (!bytes) return undefined;
    try {
      const report = decodeMessage(JobReportSchema, new TextDecoder().decode(bytes));
      return report.instanceId === instanceId ? report : undefined;
    } catch (error) {
      if (error instanceof MessageFormatError) return undefined;
      throw error;
    }
  }
}

/**
 * `instance-reports/arn:<partition>:ec2:<region>:<account>:instance/<id>`: the account and region are this instance's
 * own (from its identity document), which the deployment's app instances share with it.
 */
export function instanceArnReportKey(arnPrefix: () => Promise<string> = instanceArnPrefix): ReportKey {
  return async (instanceId) => `${JOB_REPORTS_PREFIX}${await arnPrefix()}${instanceId}`;
}

function partitionOf(region: string): string {
  if (region.startsWith("cn-")) return "aws-cn";
  if (region.startsWith("us-gov-")) return "aws-us-gov";
  return "aws";
}

async function instanceArnPrefix(): Promise<string> {
  const { accountId, region } = await instanceIdentity();
  return `arn:${partitionOf(region)}:ec2:${region}:${accountId}:instance/`;
}

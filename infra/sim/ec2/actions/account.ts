/** The account settings the scripts read: EBS encryption by default and its key. */
import type { Ec2Handler } from "../context.ts";

/** What GetEbsDefaultKmsKeyId answers while no customer key is set. */
export const AWS_MANAGED_EBS_KEY = "alias/aws/ebs";

export const accountActions: Record<string, Ec2Handler> = {
  GetEbsEncryptionByDefault: (_params, { ebsEncryption }) => ({ ebsEncryptionByDefault: ebsEncryption.byDefault, sseType: "sse-ebs" }),
  GetEbsDefaultKmsKeyId: (_params, { ebsEncryption }) => ({ kmsKeyId: ebsEncryption.kmsKeyArn ?? AWS_MANAGED_EBS_KEY }),
};

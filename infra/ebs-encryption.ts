/**
 * The account's EBS encryption by default, in this region. Under a customer managed KMS key, EC2 creates a grant on
 * the key as the caller of each start or launch: the role that starts app instances (the controller's, the web role)
 * needs kms:CreateGrant on it, else its instances go pending, then stopped with Client.InternalError.
 */
import { GetEbsDefaultKmsKeyIdCommand, GetEbsEncryptionByDefaultCommand } from "@aws-sdk/client-ec2";
import type { AwsClients } from "./aws.ts";

/** The AWS managed key, which EC2 may use for any caller of the account. */
const AWS_MANAGED_KEY = /(^|:)alias\/aws\/ebs$/;

/** The customer managed key new volumes are encrypted with by default, if there is one. */
export async function ebsDefaultCustomerKey(aws: AwsClients): Promise<string | undefined> {
  const { EbsEncryptionByDefault } = await aws.ec2.send(new GetEbsEncryptionByDefaultCommand({}));
  if (!EbsEncryptionByDefault) return undefined;
  const { KmsKeyId } = await aws.ec2.send(new GetEbsDefaultKmsKeyIdCommand({}));
  return KmsKeyId && !AWS_MANAGED_KEY.test(KmsKeyId) ? KmsKeyId : undefined;
}

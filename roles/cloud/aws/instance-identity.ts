/** This instance's account and region, from its identity document (instance metadata, IMDSv2); read once, on first use. */
import { MetadataService } from "@aws-sdk/ec2-metadata-service";

export interface InstanceIdentity {
  accountId: string;
  region: string;
}

let identity: Promise<InstanceIdentity> | undefined;

export function instanceIdentity(): Promise<InstanceIdentity> {
  return (identity ??= (async () =>
    JSON.parse(await new MetadataService({ ec2MetadataV1Disabled: true }).request("/latest/dynamic/instance-identity/document", {})) as InstanceIdentity)().catch(
    (error) => {
      identity = undefined;
      throw error;
    },
  ));
}

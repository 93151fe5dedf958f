/** This instance's account and region, from its identity document (instance metadata, IMDSv2); read once, on first use. */
import { MetadataService } from "@aws-sdk/ec2-metadata-service";
import { rememberedUntilFailure } from "./remembered.ts";

export interface InstanceIdentity {
  accountId: string;
  region: string;
}

export const instanceIdentity = rememberedUntilFailure(
  async () => JSON.parse(await new MetadataService({ ec2MetadataV1Disabled: true }).request("/latest/dynamic/instance-identity/document", {})) as InstanceIdentity,
);

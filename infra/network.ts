/**
 * Where the deployment's instances go: `--vpc-id` and `--subnet-ids` when given, else the account's default VPC.
 * Organisation accounts often have no default VPC; there, EC2 refuses a security group without a VPC and an
 * instance without a subnet, so bootstrap stops and says which options to pass.
 */
import { DescribeSubnetsCommand, DescribeVpcsCommand } from "@aws-sdk/client-ec2";
import type { AwsClients } from "./aws.ts";

export interface Network {
  vpcId: string;
  /** Subnets the instances go in (the launch template takes the first); none: EC2 picks a default subnet. */
  subnetIds: string[];
}

export async function resolveNetwork(aws: AwsClients, options: { vpcId?: string; subnetIds?: string[] }): Promise<Network> {
  const subnetIds = options.subnetIds ?? [];
  if (subnetIds.length > 0) {
    const { Subnets = [] } = await aws.ec2.send(new DescribeSubnetsCommand({ SubnetIds: subnetIds }));
    const vpcs = [...new Set(Subnets.map((subnet) => subnet.VpcId ?? ""))];
    if (vpcs.length !== 1) throw new Error(`--subnet-ids ${subnetIds.join(",")} are in ${vpcs.length} VPCs (${vpcs.join(", ")}): give subnets of one VPC`);
    if (options.vpcId !== undefined && vpcs[0] !== options.vpcId) throw new Error(`--subnet-ids are in ${vpcs[0]}, not in --vpc-id ${options.vpcId}`);
    return { vpcId: vpcs[0]!, subnetIds };
  }
  if (options.vpcId !== undefined) {
    const { Vpcs = [] } = await aws.ec2.send(new DescribeVpcsCommand({ VpcIds: [options.vpcId] }));
    if (Vpcs[0]?.IsDefault) return { vpcId: options.vpcId, subnetIds: [] };
    const { Subnets = [] } = await aws.ec2.send(new DescribeSubnetsCommand({ Filters: [{ Name: "vpc-id", Values: [options.vpcId] }] }));
    if (Subnets.length === 0) throw new Error(`VPC ${options.vpcId} has no subnets: create one, or pass --subnet-ids`);
    return { vpcId: options.vpcId, subnetIds: Subnets.flatMap((subnet) => subnet.SubnetId ?? []).sort() };
  }
  const { Vpcs = [] } = await aws.ec2.send(new DescribeVpcsCommand({ Filters: [{ Name: "is-default", Values: ["true"] }] }));
  const vpcId = Vpcs[0]?.VpcId;
  if (!vpcId) {
    throw new Error(`${aws.region} has no default VPC in this account (common in organisation accounts): pass --vpc-id and --subnet-ids (aws ec2 describe-subnets lists them)`);
  }
  return { vpcId, subnetIds: [] };
}

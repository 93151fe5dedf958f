/**
 * The IAM documents of a deployment's instance role, as pure functions of its names: the trust policy that lets
 * EC2 assume the role, and a least-privilege permissions policy that reaches only this deployment's buckets,
 * queues, instances, AMIs and launch template, and can pass only its own role.
 */
import { DEPLOYMENT_TAG } from "../roles/deployment.ts";
import type { ResourceNames } from "../roles/config.ts";


export interface PolicyStatement {
  Sid: string;
  Effect: "Allow";
  Principal?: { Service: string };
  Action: string | string[];
  Resource?: string | string[];
  Condition?: Record<string, Record<string, string | string[]>>;
}

export interface PolicyDocument {
  Version: "2012-10-17";
  Statement: PolicyStatement[];
}

/** Where the deployment lives; the account and partition are read from the role's own ARN. */
export interface PolicyScope {
  prefix: string;
  partition: string;
  region: string;
  accountId: string;
  roleName: string;
  names: ResourceNames;
}

export function instanceRoleTrustPolicy(): PolicyDocument {
  return {
    Version: "2012-10-17",
    Statement: [{ Sid: "Ec2AssumesRole", Effect: "Allow", Principal: { Service: "ec2.amazonaws.com" }, Action: "sts:AssumeRole" }],
  };
}

/** Splits `arn:<partition>:iam::<account>:role/<name>` into the parts the permissions policy needs. */
export function parseRoleArn(arn: string): { partition: string; accountId: string } {
  const match = /^arn:([^:]+):iam::(\d{12}):role\//.exec(arn);
  if (!match) throw new Error(`not an IAM role ARN: ${arn}`);
  return { partition: match[1]!, accountId: match[2]! };
}

export function instanceRolePermissions(scope: PolicyScope): PolicyDocument {
  const { partition, region, accountId, prefix, names } = scope;
  const ec2Arn = (resource: string) => `arn:${partition}:ec2:${region}:${accountId}:${resource}`;
  const buckets = [...new Set([names.inBucket, names.outBucket, names.galleryBucket])];
  const queues = [...new Set([names.reqQueue, names.respQueue, names.deadLetterQueue])];
  const ownTag = { [`aws:ResourceTag/${DEPLOYMENT_TAG}`]: prefix };
  return {
    Version: "2012-10-17",
    Statement: [
      {
        Sid: "ObjectsInDeploymentBuckets",
        Effect: "Allow",
        Action: ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
        Resource: buckets.map((bucket) => `arn:${partition}:s3:::${bucket}/*`),
      },
      {
        Sid: "ListDeploymentBuckets",
        Effect: "Allow",
        Action: "s3:ListBucket",
        Resource: buckets.map((bucket) => `arn:${partition}:s3:::${bucket}`),
      },
      {
        Sid: "DeploymentQueues",
        Effect: "Allow",
        Action: [
          "sqs:SendMessage",
          "sqs:ReceiveMessage",
          "sqs:DeleteMessage",
          "sqs:ChangeMessageVisibility",
          "sqs:GetQueueAttributes",
          "sqs:GetQueueUrl",
        ],
        Resource: queues.map((queue) => `arn:${partition}:sqs:${region}:${accountId}:${queue}`),
      },
      {
        // EC2 Describe* actions support no resource-level permissions: AWS requires "*" here.
        Sid: "DescribeFleet",
        Effect: "Allow",
        Action: ["ec2:DescribeInstances", "ec2:DescribeInstanceStatus", "ec2:DescribeTags"],
        Resource: "*",
      },
      {
        Sid: "ManageDeploymentInstances",
        Effect: "Allow",
        Action: ["ec2:StartInstances", "ec2:StopInstances", "ec2:TerminateInstances"],
        Resource: ec2Arn("instance/*"),
        Condition: { StringEquals: ownTag },
      },
      {
        // RunInstances authorizes every resource of the launch: the new instance and its volumes must be
        // requested with this deployment's tag, and they may come only from this deployment's AMI and launch template.
        Sid: "LaunchTaggedInstances",
        Effect: "Allow",
        Action: "ec2:RunInstances",
        Resource: [ec2Arn("instance/*"), ec2Arn("volume/*")],
        Condition: { StringEquals: { [`aws:RequestTag/${DEPLOYMENT_TAG}`]: prefix } },
      },
      {
        Sid: "LaunchFromDeploymentTemplateImageAndGroup",
        Effect: "Allow",
        Action: "ec2:RunInstances",
        Resource: [ec2Arn("launch-template/*"), ec2Arn("security-group/*"), `arn:${partition}:ec2:${region}::image/*`],
        Condition: { StringEquals: ownTag },
      },
      {
        // The default VPC's subnets carry no tags to scope by; this stays within the account and region.
        Sid: "LaunchIntoSubnets",
        Effect: "Allow",
        Action: "ec2:RunInstances",
        Resource: [ec2Arn("subnet/*"), ec2Arn("network-interface/*")],
      },
      {
        Sid: "TagOnLaunch",
        Effect: "Allow",
        Action: "ec2:CreateTags",
        Resource: [ec2Arn("instance/*"), ec2Arn("volume/*")],
        Condition: { StringEquals: { "ec2:CreateAction": "RunInstances", [`aws:RequestTag/${DEPLOYMENT_TAG}`]: prefix } },
      },
      {
        // Retagging is limited to this deployment's instances and may never move one to another deployment.
        Sid: "RetagDeploymentInstances",
        Effect: "Allow",
        Action: "ec2:CreateTags",
        Resource: ec2Arn("instance/*"),
        Condition: { StringEquals: ownTag, "ForAllValues:StringNotEquals": { "aws:TagKeys": [DEPLOYMENT_TAG] } },
      },
      {
        Sid: "PassOwnRoleToEc2",
        Effect: "Allow",
        Action: "iam:PassRole",
        Resource: `arn:${partition}:iam::${accountId}:role/${scope.roleName}`,
        Condition: { StringEquals: { "iam:PassedToService": "ec2.amazonaws.com" } },
      },
    ],
  };
}

import { describe, expect, test } from "bun:test";
import { instanceRolePermissions, instanceRoleTrustPolicy, parseRoleArn, type PolicyDocument, type PolicyScope } from "../../infra/policies.ts";
import { loadConfig, resourceNames } from "../../roles/config.ts";
import { Glob } from "bun";
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";

function scopeFor(prefix: string): PolicyScope {
  return {
    prefix,
    partition: "aws",
    region: "us-east-1",
    accountId: "123456789012",
    roleName: `${prefix}-instance-role`,
    names: resourceNames(loadConfig({}, { prefix })),
  };
}

type Context = Record<string, string | string[]>;

const asList = (value: string | string[] | undefined) => (value === undefined ? [] : Array.isArray(value) ? value : [value]);
const wildcard = (pattern: string) => new RegExp(`^${pattern.split("*").map((part) => part.replace(/[.?+^$[\]\\(){}|]/g, "\\$&")).join(".*")}$`);

/** A small IAM evaluator: Allow statements only, the condition operators the policy uses; anything unknown denies. */
function isAllowed(policy: PolicyDocument, action: string, resource: string, context: Context = {}): boolean {
  return policy.Statement.some((statement) => {
    if (!asList(statement.Action).some((pattern) => wildcard(pattern).test(action))) return false;
    if (!asList(statement.Resource).some((pattern) => wildcard(pattern).test(resource))) return false;
    return Object.entries(statement.Condition ?? {}).every(([operator, entries]) =>
      Object.entries(entries).every(([key, expected]) => {
        const actual = asList(context[key]);
        const wanted = asList(expected);
        switch (operator) {
          case "StringEquals":
          case "Bool":
            return actual.length > 0 && actual.every((value) => wanted.includes(value));
          case "ArnLike":
            return actual.length > 0 && actual.every((value) => wanted.some((pattern) => wildcard(pattern).test(value)));
          case "ForAllValues:StringNotEquals":
            return actual.every((value) => !wanted.includes(value));
          default:
            return false;
        }
      }),
    );
  });
}

const ours = scopeFor("alpha");
const policy = instanceRolePermissions(ours);
const names = ours.names;
const other = resourceNames(loadConfig({}, { prefix: "beta" }));
const instance = "arn:aws:ec2:us-east-1:123456789012:instance/i-0123456789abcdef0";
const sqsArn = (queue: string) => `arn:aws:sqs:us-east-1:123456789012:${queue}`;

describe("instance role trust policy", () => {
  test("only EC2 may assume the role", () => {
    const trust = instanceRoleTrustPolicy();
    expect(trust.Statement).toHaveLength(1);
    expect(trust.Statement[0]!.Principal).toEqual({ Service: "ec2.amazonaws.com" });
    expect(trust.Statement[0]!.Action).toBe("sts:AssumeRole");
  });
});

describe("instance role permissions are least privilege", () => {
  test("no wildcard actions, and '*' resources only for EC2 Describe calls", () => {
    for (const statement of policy.Statement) {
      for (const action of asList(statement.Action)) expect(action).not.toContain("*");
      if (asList(statement.Resource).includes("*")) {
        for (const action of asList(statement.Action)) expect(action).toMatch(/^ec2:Describe/);
      }
    }
  });

  test("objects and listings of this deployment's buckets only", () => {
    for (const bucket of [names.inBucket, names.outBucket]) {
      for (const action of ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]) {
        expect(isAllowed(policy, action, `arn:aws:s3:::${bucket}/photo.jpg`)).toBe(true);
      }
      expect(isAllowed(policy, "s3:ListBucket", `arn:aws:s3:::${bucket}`)).toBe(true);
      expect(isAllowed(policy, "s3:DeleteBucket", `arn:aws:s3:::${bucket}`)).toBe(false);
      expect(isAllowed(policy, "s3:PutBucketPolicy", `arn:aws:s3:::${bucket}`)).toBe(false);
    }
    expect(isAllowed(policy, "s3:GetObject", `arn:aws:s3:::${other.inBucket}/photo.jpg`)).toBe(false);
    expect(isAllowed(policy, "s3:ListBucket", `arn:aws:s3:::${other.outBucket}`)).toBe(false);
    expect(isAllowed(policy, "s3:GetObject", `arn:aws:s3:::${names.inBucket}-copy/photo.jpg`)).toBe(false);
  });

  test("the queue calls the service makes, on this deployment's queues only", () => {
    for (const queue of [names.reqQueue, names.respQueue, names.deadLetterQueue]) {
      for (const action of ["sqs:SendMessage", "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"]) {
        expect(isAllowed(policy, action, sqsArn(queue))).toBe(true);
      }
      expect(isAllowed(policy, "sqs:DeleteQueue", sqsArn(queue))).toBe(false);
      expect(isAllowed(policy, "sqs:PurgeQueue", sqsArn(queue))).toBe(false);
    }
    expect(isAllowed(policy, "sqs:ReceiveMessage", sqsArn(other.reqQueue))).toBe(false);
    expect(isAllowed(policy, "sqs:SendMessage", "arn:aws:sqs:eu-west-1:123456789012:" + names.reqQueue)).toBe(false);
    expect(isAllowed(policy, "sqs:SendMessage", "arn:aws:sqs:us-east-1:999999999999:" + names.reqQueue)).toBe(false);
  });

  test("start, stop and terminate only instances tagged with this deployment", () => {
    for (const action of ["ec2:StartInstances", "ec2:StopInstances", "ec2:TerminateInstances"]) {
      expect(isAllowed(policy, action, instance, { "aws:ResourceTag/Deployment": "alpha" })).toBe(true);
      expect(isAllowed(policy, action, instance, { "aws:ResourceTag/Deployment": "beta" })).toBe(false);
      expect(isAllowed(policy, action, instance)).toBe(false);
    }
    expect(isAllowed(policy, "ec2:DescribeInstances", "*")).toBe(true);
    expect(isAllowed(policy, "ec2:ModifyInstanceAttribute", instance, { "aws:ResourceTag/Deployment": "alpha" })).toBe(false);
  });

  test("launches only tagged instances from this deployment's template and image", () => {
    expect(isAllowed(policy, "ec2:RunInstances", instance, { "aws:RequestTag/Deployment": "alpha" })).toBe(true);
    expect(isAllowed(policy, "ec2:RunInstances", instance, { "aws:RequestTag/Deployment": "beta" })).toBe(false);
    expect(isAllowed(policy, "ec2:RunInstances", instance)).toBe(false);
    const template = "arn:aws:ec2:us-east-1:123456789012:launch-template/lt-0abc";
    const image = "arn:aws:ec2:us-east-1::image/ami-0abc";
    for (const resource of [template, image]) {
      expect(isAllowed(policy, "ec2:RunInstances", resource, { "aws:ResourceTag/Deployment": "alpha" })).toBe(true);
      expect(isAllowed(policy, "ec2:RunInstances", resource, { "aws:ResourceTag/Deployment": "beta" })).toBe(false);
    }
  });

  test("tags on launch, and retagging never moves an instance to another deployment", () => {
    expect(isAllowed(policy, "ec2:CreateTags", instance, { "ec2:CreateAction": "RunInstances", "aws:RequestTag/Deployment": "alpha" })).toBe(true);
    expect(isAllowed(policy, "ec2:CreateTags", instance, { "ec2:CreateAction": "RunInstances", "aws:RequestTag/Deployment": "beta" })).toBe(false);
    expect(isAllowed(policy, "ec2:CreateTags", instance, { "aws:ResourceTag/Deployment": "alpha", "aws:TagKeys": ["Role"] })).toBe(true);
    expect(isAllowed(policy, "ec2:CreateTags", instance, { "aws:ResourceTag/Deployment": "alpha", "aws:TagKeys": ["Role", "Deployment"] })).toBe(false);
    expect(isAllowed(policy, "ec2:CreateTags", instance, { "aws:ResourceTag/Deployment": "beta", "aws:TagKeys": ["Role"] })).toBe(false);
  });

  test("passes only its own role, only to EC2", () => {
    const own = "arn:aws:iam::123456789012:role/alpha-instance-role";
    expect(isAllowed(policy, "iam:PassRole", own, { "iam:PassedToService": "ec2.amazonaws.com" })).toBe(true);
    expect(isAllowed(policy, "iam:PassRole", own, { "iam:PassedToService": "lambda.amazonaws.com" })).toBe(false);
    expect(isAllowed(policy, "iam:PassRole", "arn:aws:iam::123456789012:role/admin", { "iam:PassedToService": "ec2.amazonaws.com" })).toBe(false);
  });

  test("no resource of another deployment appears in the document", () => {
    const text = JSON.stringify(policy);
    for (const name of Object.values(other)) expect(text).not.toContain(name);
    expect(text).not.toContain("beta");
  });
});

test("account and partition come from the role ARN", () => {
  expect(parseRoleArn("arn:aws-cn:iam::123456789012:role/x")).toEqual({ partition: "aws-cn", accountId: "123456789012" });
  expect(() => parseRoleArn("arn:aws:s3:::bucket")).toThrow("not an IAM role ARN");
});

/** The IAM action each SDK command of the service needs, where its name is not service:CommandName. */
const ACTION_OF: Record<string, string> = { "s3:HeadObject": "s3:GetObject", "s3:ListObjectsV2": "s3:ListBucket" };

test("the policy grants every AWS call the service's own code makes", () => {
  const root = resolve(import.meta.dir, "../..");
  const needed = new Set<string>();
  for (const file of ["index.ts", ...new Glob("roles/**/*.ts").scanSync(root)]) {
    const source = readFileSync(join(root, file), "utf8");
    for (const [, names, service] of source.matchAll(/import\s*\{([^}]*)\}\s*from\s*"@aws-sdk\/client-([a-z0-9]+)"/g)) {
      for (const [, command] of names!.matchAll(/\b([A-Z][A-Za-z0-9]+)Command\b/g)) {
        const action = `${service}:${command}`;
        needed.add(ACTION_OF[action] ?? action);
      }
    }
  }
  expect(needed.size).toBeGreaterThan(10);
  const granted = new Set(policy.Statement.flatMap((statement) => asList(statement.Action)));
  expect([...needed].filter((action) => !granted.has(action))).toEqual([]);
});

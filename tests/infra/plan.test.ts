import { describe, expect, test } from "bun:test";
import { loadConfig } from "../../roles/config.ts";
import { instanceRoleTrustPolicy } from "../../infra/policies.ts";
import { desiredPermissions, desiredState, describeChange, planChanges, redrivePolicy, type ActualState, type DesiredState } from "../../infra/plan.ts";

const ROLE_ARN = "arn:aws:iam::123456789012:role/alpha-instance-role";
const config = loadConfig({}, { prefix: "alpha", visibilityTimeoutSeconds: 45, maxReceives: 4 });
const desired = desiredState(config, { region: "us-east-1", ingressCidr: "203.0.113.0/24", appInstanceType: "t3.small" });

/** The state AWS reports once everything the plan asks for exists. */
function converged(state: DesiredState): ActualState {
  const tags = { ...state.tags };
  const queueArn = (name: string) => `arn:aws:sqs:us-east-1:123456789012:${name}`;
  return {
    buckets: Object.fromEntries(state.buckets.map((name) => [name, { publicAccessBlocked: true, encrypted: true, tags }])),
    queues: Object.fromEntries(
      state.queues.map((queue) => [
        queue.name,
        {
          url: `https://sqs.us-east-1.amazonaws.com/123456789012/${queue.name}`,
          attributes: {
            ...queue.attributes,
            QueueArn: queueArn(queue.name),
            ...(queue.redrive ? { RedrivePolicy: redrivePolicy(queueArn(queue.redrive.deadLetterQueue), queue.redrive.maxReceiveCount) } : {}),
          },
          tags,
        },
      ]),
    ),
    securityGroup: { id: "sg-1", ingress: [{ protocol: "tcp", fromPort: 8000, toPort: 8000, cidr: "203.0.113.0/24" }], tags },
    role: { arn: ROLE_ARN, trustPolicy: instanceRoleTrustPolicy(), permissions: desiredPermissions(state, ROLE_ARN), tags },
    instanceProfile: { arn: "arn:aws:iam::123456789012:instance-profile/alpha-instance-profile", roleNames: [state.role.name], tags },
    launchTemplate: {
      id: "lt-1",
      instanceType: "t3.small",
      profileName: state.role.profileName,
      securityGroupIds: ["sg-1"],
      httpTokens: "required",
      instanceMetadataTags: "enabled",
      instanceTags: tags,
      tags: { ...tags, Other: "kept" },
    },
  };
}

describe("desired state", () => {
  test("the request queue refuses messages over 1 KiB, long-polls, and dead-letters after maxReceives", () => {
    const request = desired.queues.find((queue) => queue.name === "alpha-req-queue")!;
    expect(request.attributes).toEqual({ MaximumMessageSize: "1024", ReceiveMessageWaitTimeSeconds: "20", VisibilityTimeout: "45" });
    expect(request.redrive).toEqual({ deadLetterQueue: "alpha-dlq", maxReceiveCount: 4 });
    expect(desired.queues.map((queue) => queue.name)).toEqual(["alpha-dlq", "alpha-req-queue", "alpha-resp-queue"]);
  });

  test("names derive from the prefix, the gallery shares the output bucket, everything carries Deployment=<prefix>", () => {
    expect(desired.buckets).toEqual(["alpha-in-bucket", "alpha-out-bucket"]);
    expect(desired.tags).toEqual({ Deployment: "alpha" });
    expect(desired.securityGroup).toMatchObject({ port: 8000, cidr: "203.0.113.0/24" });
  });
});

describe("plan", () => {
  test("an empty account gets every resource, each dependency before its user", () => {
    const plan = planChanges(desired, { buckets: {}, queues: {} }).map(describeChange);
    expect(plan).toEqual([
      "create bucket alpha-in-bucket",
      "block public access to bucket alpha-in-bucket",
      "turn on default encryption (SSE-S3) of bucket alpha-in-bucket",
      "tag bucket alpha-in-bucket",
      "create bucket alpha-out-bucket",
      "block public access to bucket alpha-out-bucket",
      "turn on default encryption (SSE-S3) of bucket alpha-out-bucket",
      "tag bucket alpha-out-bucket",
      "create queue alpha-dlq",
      "create queue alpha-req-queue",
      "create queue alpha-resp-queue",
      "create security-group alpha-web",
      "allow tcp 8000 from 203.0.113.0/24 into security group alpha-web",
      "create role alpha-instance-role",
      "put least-privilege policy alpha-instance-policy on role alpha-instance-role",
      "create instance-profile alpha-instance-profile",
      "add role alpha-instance-role to instance profile alpha-instance-profile",
      "create launch-template alpha-instance",
    ]);
  });

  test("a converged deployment needs nothing, whatever else it carries", () => {
    expect(planChanges(desired, converged(desired))).toEqual([]);
  });

  test("a queue that drifted gets exactly its differing attributes back", () => {
    const actual = converged(desired);
    const request = actual.queues["alpha-req-queue"]!;
    request.attributes.MaximumMessageSize = "262144";
    request.attributes.RedrivePolicy = redrivePolicy("arn:aws:sqs:us-east-1:123456789012:alpha-dlq", 10);
    expect(planChanges(desired, actual)).toEqual([{ kind: "set-queue-attributes", name: "alpha-req-queue", attributes: ["MaximumMessageSize", "RedrivePolicy"] }]);
  });

  test("a redrive policy pointing at another deployment's dead-letter queue is replaced", () => {
    const actual = converged(desired);
    actual.queues["alpha-req-queue"]!.attributes.RedrivePolicy = redrivePolicy("arn:aws:sqs:us-east-1:123456789012:beta-dlq", 4);
    expect(planChanges(desired, actual).map(describeChange)).toEqual(["set RedrivePolicy of queue alpha-req-queue"]);
  });

  test("a new ingress CIDR is allowed and the old one revoked", () => {
    const moved = desiredState(config, { region: "us-east-1", ingressCidr: "198.51.100.7/32", appInstanceType: "t3.small" });
    expect(planChanges(moved, converged(desired)).map(describeChange)).toEqual([
      "allow tcp 8000 from 198.51.100.7/32 into security group alpha-web",
      "revoke tcp 8000-8000 from 203.0.113.0/24 in security group alpha-web",
    ]);
  });

  test("a bucket that lost its encryption or public access block gets just that back", () => {
    const actual = converged(desired);
    actual.buckets["alpha-in-bucket"] = { publicAccessBlocked: false, encrypted: true, tags: { Deployment: "alpha" } };
    actual.buckets["alpha-out-bucket"] = { publicAccessBlocked: true, encrypted: false, tags: {} };
    expect(planChanges(desired, actual).map(describeChange)).toEqual([
      "block public access to bucket alpha-in-bucket",
      "turn on default encryption (SSE-S3) of bucket alpha-out-bucket",
      "tag bucket alpha-out-bucket",
    ]);
  });

  test("a widened permissions policy or trust policy is put back", () => {
    const actual = converged(desired);
    actual.role = { ...actual.role!, permissions: { Version: "2012-10-17", Statement: [{ Effect: "Allow", Action: "*", Resource: "*" }] } };
    actual.role.trustPolicy = { Version: "2012-10-17", Statement: [{ Effect: "Allow", Principal: { AWS: "*" }, Action: "sts:AssumeRole" }] };
    expect(planChanges(desired, actual).map(describeChange)).toEqual([
      "reset the trust policy of role alpha-instance-role to EC2 only",
      "put least-privilege policy alpha-instance-policy on role alpha-instance-role",
    ]);
  });

  test("a launch template that allows IMDSv1 or lost its instance tags gets a new version", () => {
    const actual = converged(desired);
    actual.launchTemplate = { ...actual.launchTemplate!, httpTokens: "optional", instanceTags: {} };
    expect(planChanges(desired, actual)).toEqual([
      { kind: "update-launch-template", name: "alpha-instance", fields: ["MetadataOptions", "TagSpecifications"] },
    ]);
  });

  test("a replaced security group is swapped into the launch template", () => {
    const actual = converged(desired);
    delete actual.securityGroup;
    expect(planChanges(desired, actual).map(describeChange)).toEqual([
      "create security-group alpha-web",
      "allow tcp 8000 from 203.0.113.0/24 into security group alpha-web",
      "new default version of launch template alpha-instance (SecurityGroupIds)",
    ]);
  });
});

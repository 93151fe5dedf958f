import { describe, expect, test } from "bun:test";
import { loadConfig } from "../../roles/config.ts";
import { launchTemplateData } from "../../infra/launch-template.ts";
import { INSTANCE_ROLES, instanceRoleTrustPolicy } from "../../infra/policies.ts";
import { desiredPermissions, desiredState, describeChange, planChanges, redrivePolicy, sha256Hex, type ActualState, type DesiredState } from "../../infra/plan.ts";

const config = loadConfig({}, { prefix: "alpha", visibilityTimeoutSeconds: 45, maxReceives: 4 });
const options = { region: "us-east-1", ingressCidr: "203.0.113.0/24", appInstanceType: "t3.small" };
const desired = desiredState(config, options);
const STORED_TOKEN = "stored-token-value";

/** The state AWS reports once everything the plan asks for exists. */
function converged(state: DesiredState): ActualState {
  const tags = { ...state.tags };
  const queueArn = (name: string) => `arn:aws:sqs:us-east-1:123456789012:${name}`;
  return {
    buckets: Object.fromEntries(
      state.buckets.map((name) => [
        name,
        {
          publicAccessBlocked: true,
          encrypted: true,
          tags,
          expirations: state.expiries.filter((expiry) => expiry.bucket === name).map(({ prefix, days }) => ({ prefix, days })),
          abortIncompleteUploadsAfterDays: 1,
        },
      ]),
    ),
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
    roles: Object.fromEntries(
      INSTANCE_ROLES.map((role) => {
        const arn = `arn:aws:iam::123456789012:role/${state.roles[role].name}`;
        return [state.roles[role].name, { arn, trustPolicy: instanceRoleTrustPolicy(), permissions: desiredPermissions(state, role, arn, "lt-1"), tags }];
      }),
    ),
    instanceProfiles: Object.fromEntries(
      INSTANCE_ROLES.map((role) => {
        const { name, profileName } = state.roles[role];
        return [profileName, { arn: `arn:aws:iam::123456789012:instance-profile/${profileName}`, roleNames: [name], tags }];
      }),
    ),
    apiToken: { sha256: sha256Hex(STORED_TOKEN) },
    launchTemplate: {
      id: "lt-1",
      instanceType: "t3.small",
      profileName: state.roles.app.profileName,
      securityGroupIds: ["sg-1"],
      httpTokens: "required",
      instanceMetadataTags: "enabled",
      volumes: [{ deviceName: "/dev/xvda", sizeGiB: 8, type: "gp3", iops: 3000, throughputMiBps: 125, deleteOnTermination: true }],
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
    expect(desired.buckets).toEqual(["alpha-in-bucket", "alpha-out-bucket", "alpha-reports-bucket"]);
    expect(desired.tags).toEqual({ Deployment: "alpha" });
    expect(desired.securityGroup).toMatchObject({ port: 8000, cidr: "203.0.113.0/24" });
  });
});

describe("plan", () => {
  test("an empty account gets every resource, each dependency before its user", () => {
    const plan = planChanges(desired, { buckets: {}, queues: {}, roles: {}, instanceProfiles: {} }).map(describeChange);
    expect(plan).toEqual([
      "create bucket alpha-in-bucket",
      "block public access to bucket alpha-in-bucket",
      "turn on default encryption (SSE-S3) of bucket alpha-in-bucket",
      "tag bucket alpha-in-bucket",
      "set the lifecycle of bucket alpha-in-bucket: abort multipart uploads left incomplete after 1 day(s)",
      "create bucket alpha-out-bucket",
      "block public access to bucket alpha-out-bucket",
      "turn on default encryption (SSE-S3) of bucket alpha-out-bucket",
      "tag bucket alpha-out-bucket",
      "set the lifecycle of bucket alpha-out-bucket: abort multipart uploads left incomplete after 1 day(s); expire objects under embeddings/ after 1 day(s) (embeddings of abandoned enrollments); expire objects under api/ after 1 day(s) (faces results a web process died before reading)",
      "create bucket alpha-reports-bucket",
      "block public access to bucket alpha-reports-bucket",
      "turn on default encryption (SSE-S3) of bucket alpha-reports-bucket",
      "tag bucket alpha-reports-bucket",
      "set the lifecycle of bucket alpha-reports-bucket: abort multipart uploads left incomplete after 1 day(s)",
      "store the admin token as private object s3://alpha-in-bucket/_secrets/api-token (FACEFLEET_API_TOKEN, else a new one printed once)",
      "create queue alpha-dlq",
      "create queue alpha-req-queue",
      "create queue alpha-resp-queue",
      "create security-group alpha-web",
      "allow tcp 8000 from 203.0.113.0/24 into security group alpha-web",
      "create role alpha-web-role",
      "create instance-profile alpha-web-profile",
      "add role alpha-web-role to instance profile alpha-web-profile",
      "create role alpha-app-role",
      "create instance-profile alpha-app-profile",
      "add role alpha-app-role to instance profile alpha-app-profile",
      "create role alpha-builder-role",
      "create instance-profile alpha-builder-profile",
      "add role alpha-builder-role to instance profile alpha-builder-profile",
      "create launch-template alpha-instance",
      "put the web instances' least-privilege policy alpha-web-policy on role alpha-web-role",
      "put the app instances' least-privilege policy alpha-app-policy on role alpha-app-role",
      "put the builder instances' least-privilege policy alpha-builder-policy on role alpha-builder-role",
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
    const moved = desiredState(config, { ...options, ingressCidr: "198.51.100.7/32" });
    expect(planChanges(moved, converged(desired)).map(describeChange)).toEqual([
      "allow tcp 8000 from 198.51.100.7/32 into security group alpha-web",
      "revoke tcp 8000-8000 from 203.0.113.0/24 in security group alpha-web",
    ]);
  });

  test("a bucket that lost its encryption, public access block or expiry rule gets just that back", () => {
    const actual = converged(desired);
    actual.buckets["alpha-in-bucket"] = { publicAccessBlocked: false, encrypted: true, tags: { Deployment: "alpha" }, abortIncompleteUploadsAfterDays: 1 };
    actual.buckets["alpha-out-bucket"] = { publicAccessBlocked: true, encrypted: false, tags: {}, abortIncompleteUploadsAfterDays: 1 };
    expect(planChanges(desired, actual).map(describeChange)).toEqual([
      "block public access to bucket alpha-in-bucket",
      "turn on default encryption (SSE-S3) of bucket alpha-out-bucket",
      "tag bucket alpha-out-bucket",
      "set the lifecycle of bucket alpha-out-bucket: abort multipart uploads left incomplete after 1 day(s); expire objects under embeddings/ after 1 day(s) (embeddings of abandoned enrollments); expire objects under api/ after 1 day(s) (faces results a web process died before reading)",
    ]);
  });

  test("every bucket aborts multipart uploads left incomplete after a day (a web process killed mid-upload leaves its parts billed); the output (gallery's) bucket keeps its expiries of embeddings/ and api/ beside", () => {
    const actual = converged(desired);
    for (const bucket of Object.values(actual.buckets)) delete bucket!.abortIncompleteUploadsAfterDays;
    actual.buckets["alpha-reports-bucket"]!.abortIncompleteUploadsAfterDays = 7;
    const changes = planChanges(desired, actual);
    expect(changes).toEqual(
      desired.buckets.map((name) => ({
        kind: "set-lifecycle",
        name,
        abortIncompleteUploadsAfterDays: 1,
        expiries:
          name === "alpha-out-bucket"
            ? [
                { prefix: "embeddings/", days: 1, what: "embeddings" },
                { prefix: "api/", days: 1, what: "api-results" },
              ]
            : [],
      })),
    );
  });

  describe("the retention of uploaded photos (uploadRetentionDays)", () => {
    const retaining = desiredState({ ...config, uploadRetentionDays: 30 }, options);
    const uploadRules = [..."0123456789abcdef"].map((prefix) => ({ prefix, days: 30 }));
    const withUploadRules = "set the lifecycle of bucket alpha-in-bucket: abort multipart uploads left incomplete after 1 day(s); expire uploaded photos (keys beginning with 0123456789abcdef, one rule each; not _secrets/ or _bake/) after 30 day(s) (uploadRetentionDays)";
    const inLifecycle = (expirations: { prefix: string; days: number }[], abortRule = true) => {
      const actual = converged(desired);
      actual.buckets["alpha-in-bucket"] = { ...actual.buckets["alpha-in-bucket"]!, expirations, abortIncompleteUploadsAfterDays: abortRule ? 1 : undefined };
      return actual;
    };
    test.each([
      ["off (the default), none there: nothing to do", desired, inLifecycle([]), []],
      ["set, none there: the rules join the abort rule in the input bucket's one configuration", retaining, inLifecycle([]), [withUploadRules]],
      ["set, all there: nothing to do (a second bootstrap)", retaining, inLifecycle(uploadRules), []],
      ["set, all there but the abort rule: both put back", retaining, inLifecycle(uploadRules, false), [withUploadRules]],
      ["set, one rule missing", retaining, inLifecycle(uploadRules.slice(1)), [withUploadRules]],
      ["set to 30, rules of 7 there", retaining, inLifecycle(uploadRules.map((rule) => ({ ...rule, days: 7 }))), [withUploadRules]],
      ["set, an extra rule there (someone's whole-bucket expiry, which would take the admin token)", retaining, inLifecycle([...uploadRules, { prefix: "", days: 30 }]), [withUploadRules]],
      ["off again, the rules there: removed, the abort rule kept", desired, inLifecycle(uploadRules), ["set the lifecycle of bucket alpha-in-bucket: abort multipart uploads left incomplete after 1 day(s)"]],
    ] as const)("%s", (_, wanted, actual, plan) => {
      expect(planChanges(wanted, actual).map(describeChange)).toEqual([...plan]);
    });

    test("only the input bucket gets them, never a key of _secrets/ or _bake/; the output bucket keeps its expiries of embeddings/ and api/ alone", () => {
      const lifecycles = planChanges(retaining, { buckets: {}, queues: {}, roles: {}, instanceProfiles: {} }).filter((change) => change.kind === "set-lifecycle");
      expect(Object.fromEntries(lifecycles.map((change) => [change.name, change.expiries.map(({ prefix }) => prefix)]))).toEqual({
        "alpha-in-bucket": [..."0123456789abcdef"],
        "alpha-out-bucket": ["embeddings/", "api/"],
        "alpha-reports-bucket": [],
      });
      for (const key of ["_secrets/api-token", "_secrets/api-keys.json", "_bake/1/project.tar.gz"]) expect(lifecycles[0]!.expiries.some(({ prefix }) => key.startsWith(prefix))).toBe(false);
      const upload = `${crypto.randomUUID()}/photo.jpg`;
      expect(lifecycles[0]!.expiries.some(({ prefix }) => upload.startsWith(prefix))).toBe(true);
    });

    test("the setting is read from the environment; a negative one is refused (an input bucket shared with another bucket: tests/roles/config.test.ts)", () => {
      expect(loadConfig({ FACEFLEET_UPLOAD_RETENTION_DAYS: "30" }, { prefix: "alpha" }).uploadRetentionDays).toBe(30);
      expect(() => loadConfig({ FACEFLEET_UPLOAD_RETENTION_DAYS: "-1" })).toThrow(/uploadRetentionDays/);
    });

    test("more days than a lifecycle rule's Days (an int) takes are refused at start, not by S3 halfway through a bootstrap", () => {
      expect(() => loadConfig({ FACEFLEET_UPLOAD_RETENTION_DAYS: String(2 ** 31) })).toThrow(/uploadRetentionDays/);
      expect(loadConfig({ FACEFLEET_UPLOAD_RETENTION_DAYS: String(2 ** 31 - 1) }).uploadRetentionDays).toBe(2 ** 31 - 1);
    });
  });

  test("a widened permissions policy or trust policy is put back", () => {
    const actual = converged(desired);
    const app = actual.roles["alpha-app-role"]!;
    app.permissions = { Version: "2012-10-17", Statement: [{ Effect: "Allow", Action: "*", Resource: "*" }] };
    app.trustPolicy = { Version: "2012-10-17", Statement: [{ Effect: "Allow", Principal: { AWS: "*" }, Action: "sts:AssumeRole" }] };
    expect(planChanges(desired, actual).map(describeChange)).toEqual([
      "reset the trust policy of role alpha-app-role to EC2 only",
      "put the app instances' least-privilege policy alpha-app-policy on role alpha-app-role",
    ]);
  });

  test("another app instance type changes the launch template and the web role's launch permissions", () => {
    const bigger = desiredState(config, { ...options, appInstanceType: "c7i.large" });
    expect(planChanges(bigger, converged(desired)).map(describeChange)).toEqual([
      "new default version of launch template alpha-instance (InstanceType)",
      "put the web instances' least-privilege policy alpha-web-policy on role alpha-web-role",
    ]);
  });

  test("a re-created launch template gets the web role's policy put again, naming its new id", () => {
    const actual = converged(desired);
    delete actual.launchTemplate;
    expect(planChanges(desired, actual).map(describeChange)).toEqual([
      "create launch-template alpha-instance",
      "put the web instances' least-privilege policy alpha-web-policy on role alpha-web-role",
    ]);
  });

  test("the admin token: a stored one is kept; FACEFLEET_API_TOKEN replaces a different one; the plan never holds the secret", () => {
    expect(planChanges(desiredState(config, { ...options, apiToken: STORED_TOKEN }), converged(desired))).toEqual([]);
    const rotated = desiredState(config, { ...options, apiToken: "a-new-secret-token" });
    const plan = planChanges(rotated, converged(desired));
    expect(plan.map(describeChange)).toEqual(["replace the admin token at s3://alpha-in-bucket/_secrets/api-token with FACEFLEET_API_TOKEN"]);
    expect(JSON.stringify({ rotated, plan })).not.toContain("a-new-secret-token");
    const missing = converged(desired);
    delete missing.apiToken;
    expect(planChanges(rotated, missing)).toEqual([{ kind: "put-api-token", name: "alpha-in-bucket", key: "_secrets/api-token", reason: "create" }]);
  });

  test("a launch template that allows IMDSv1 or lost its instance tags gets a new version", () => {
    const actual = converged(desired);
    actual.launchTemplate = { ...actual.launchTemplate!, httpTokens: "optional", instanceTags: {} };
    expect(planChanges(desired, actual)).toEqual([
      { kind: "update-launch-template", name: "alpha-instance", fields: ["MetadataOptions", "TagSpecifications"] },
    ]);
  });

  test("the launch template sets the root volume (8 GiB gp3 at its baseline, deleted with the instance); a template without it, with a bigger one or with a volume more gets a new version", () => {
    expect(launchTemplateData(desired, "sg-1").BlockDeviceMappings).toEqual([
      { DeviceName: "/dev/xvda", Ebs: { VolumeSize: 8, VolumeType: "gp3", Iops: 3000, Throughput: 125, DeleteOnTermination: true } },
    ]);
    const root = converged(desired).launchTemplate!.volumes[0]!;
    for (const volumes of [[], [{ ...root, sizeGiB: 1000 }], [{ ...root, type: "io2", iops: 64000 }], [root, { ...root, deviceName: "/dev/sdb" }]]) {
      const actual = converged(desired);
      actual.launchTemplate = { ...actual.launchTemplate!, volumes };
      expect(planChanges(desired, actual)).toEqual([{ kind: "update-launch-template", name: "alpha-instance", fields: ["BlockDeviceMappings"] }]);
    }
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

  test("given subnets, the launch template's network interface moves to the first; the template data names it with the group", () => {
    const inSubnets = desiredState(config, { region: "us-east-1", ingressCidr: "203.0.113.0/24", appInstanceType: "t3.small", network: { vpcId: "vpc-1", subnetIds: ["subnet-a", "subnet-b"] } });
    expect(planChanges(inSubnets, converged(desired))).toEqual([{ kind: "update-launch-template", name: "alpha-instance", fields: ["NetworkInterfaces"] }]);
    expect(planChanges(inSubnets, { ...converged(desired), launchTemplate: { ...converged(desired).launchTemplate!, subnetId: "subnet-a" } })).toEqual([]);
    expect(launchTemplateData(inSubnets, "sg-1")).toMatchObject({ NetworkInterfaces: [{ DeviceIndex: 0, SubnetId: "subnet-a", Groups: ["sg-1"] }] });
    expect(launchTemplateData(inSubnets, "sg-1").SecurityGroupIds).toBeUndefined();
    expect(launchTemplateData(desired, "sg-1")).toMatchObject({ SecurityGroupIds: ["sg-1"] });
  });
});

/**
 * `bun run infra/teardown.ts [--yes] [--dry-run]`
 * Deletes everything tagged Deployment=<prefix>: instances, images with their snapshots, launch templates,
 * security groups, queues, buckets with all their objects and open multipart uploads, and the web, app and builder
 * roles (with any managed policy attached to them by hand) and profiles. It finds them by
 * the tag, not from the state file, asks first unless --yes, and checks at the end that nothing is left.
 */
import {
  DeleteLaunchTemplateCommand,
  DeleteSecurityGroupCommand,
  DeregisterImageCommand,
  DescribeImagesCommand,
  DescribeLaunchTemplatesCommand,
  DescribeSecurityGroupsCommand,
  TerminateInstancesCommand,
} from "@aws-sdk/client-ec2";
import {
  DeleteInstanceProfileCommand,
  DeleteRoleCommand,
  DeleteRolePolicyCommand,
  DetachRolePolicyCommand,
  GetInstanceProfileCommand,
  GetRoleCommand,
  ListAttachedRolePoliciesCommand,
  ListRolePoliciesCommand,
  RemoveRoleFromInstanceProfileCommand,
} from "@aws-sdk/client-iam";
import {
  AbortMultipartUploadCommand,
  DeleteBucketCommand,
  DeleteObjectsCommand,
  GetBucketTaggingCommand,
  ListBucketsCommand,
  ListMultipartUploadsCommand,
  paginateListObjectsV2,
} from "@aws-sdk/client-s3";
import { DeleteQueueCommand, ListQueueTagsCommand, ListQueuesCommand } from "@aws-sdk/client-sqs";
import { awsClients, deploymentFilter, destroyClients, fromTagList, isAwsError, NO_SUCH_QUEUE, unlessMissing, type AwsClients } from "./aws.ts";
import { listDeploymentInstances, waitForStates } from "./instances.ts";
import { instanceRoleNames } from "./policies.ts";
import { DEPLOYMENT_TAG } from "../roles/deployment.ts";
import { confirm, runScript, waitUntil, type ScriptContext } from "./script.ts";
import { removeState, stateFilePath } from "./state.ts";

interface Inventory {
  instances: string[];
  images: string[];
  launchTemplates: string[];
  securityGroups: string[];
  queueUrls: string[];
  buckets: string[];
  instanceProfiles: string[];
  roles: string[];
}

const NO_SUCH_IAM_ENTITY = ["NoSuchEntity", "NoSuchEntityException"];
/** SQS takes up to 60 s to delete a queue; images and IAM roles also stay listed for a while. */
const GONE_TIMEOUT_SECONDS = 120;

async function taggedIamName(prefix: string, read: () => Promise<{ Tags?: { Key?: string; Value?: string }[] } | undefined>): Promise<boolean> {
  const found = await unlessMissing(read, ...NO_SUCH_IAM_ENTITY);
  return found !== undefined && fromTagList(found.Tags)[DEPLOYMENT_TAG] === prefix;
}

async function takeInventory(aws: AwsClients, context: ScriptContext): Promise<Inventory> {
  const { prefix } = context.config;
  const tagged = (tags: Record<string, string> | undefined) => tags?.[DEPLOYMENT_TAG] === prefix;
  const filters = [deploymentFilter(prefix)];
  // IAM cannot be searched by tag: the roles and profiles are found by their names and deleted only if tagged.
  const roles = Object.values(instanceRoleNames(prefix));

  const [instances, images, templates, groups, queues, buckets, profilesTagged, rolesTagged] = await Promise.all([
    listDeploymentInstances(aws, prefix).then((all) => all.filter((instance) => instance.state !== "terminated").map((instance) => instance.id)),
    aws.ec2.send(new DescribeImagesCommand({ Owners: ["self"], Filters: filters })).then((r) => (r.Images ?? []).flatMap((image) => image.ImageId ?? [])),
    aws.ec2.send(new DescribeLaunchTemplatesCommand({ Filters: filters })).then((r) => (r.LaunchTemplates ?? []).flatMap((t) => t.LaunchTemplateId ?? [])),
    aws.ec2.send(new DescribeSecurityGroupsCommand({ Filters: filters })).then((r) => (r.SecurityGroups ?? []).flatMap((group) => group.GroupId ?? [])),
    aws.sqs.send(new ListQueuesCommand({ QueueNamePrefix: prefix })).then(async (r) => {
      const urls = r.QueueUrls ?? [];
      // ListQueues may list a queue for about 60 s after its deletion; SQS itself no longer knows it: gone.
      const tags = await Promise.all(urls.map((QueueUrl) => unlessMissing(() => aws.sqs.send(new ListQueueTagsCommand({ QueueUrl })), ...NO_SUCH_QUEUE)));
      return urls.filter((_, index) => tagged(tags[index]?.Tags));
    }),
    aws.s3.send(new ListBucketsCommand({ Prefix: prefix })).then(async (r) => {
      const names = (r.Buckets ?? []).flatMap((bucket) => bucket.Name ?? []);
      const tags = await Promise.all(
        names.map((Bucket) =>
          // A bucket in another region or of unknown tagging is not ours to delete.
          aws.s3.send(new GetBucketTaggingCommand({ Bucket })).then((t) => fromTagList(t.TagSet), () => undefined),
        ),
      );
      return names.filter((_, index) => tagged(tags[index]));
    }),
    Promise.all(
      roles.map((role) => taggedIamName(prefix, async () => (await aws.iam.send(new GetInstanceProfileCommand({ InstanceProfileName: role.profileName }))).InstanceProfile)),
    ),
    Promise.all(roles.map((role) => taggedIamName(prefix, async () => (await aws.iam.send(new GetRoleCommand({ RoleName: role.name }))).Role))),
  ]);
  return {
    instances,
    images,
    launchTemplates: templates,
    securityGroups: groups,
    queueUrls: queues,
    buckets,
    instanceProfiles: roles.filter((_, index) => profilesTagged[index]).map((role) => role.profileName),
    roles: roles.filter((_, index) => rolesTagged[index]).map((role) => role.name),
  };
}

const inventorySize = (inventory: Inventory) => Object.values(inventory).reduce((sum, items: string[]) => sum + items.length, 0);

/** Multipart uploads left open (a web process killed mid-upload): their parts are billed until aborted. */
async function abortOpenUploads(aws: AwsClients, Bucket: string): Promise<number> {
  let aborted = 0;
  let markers: { KeyMarker?: string; UploadIdMarker?: string } = {};
  for (;;) {
    const page = await aws.s3.send(new ListMultipartUploadsCommand({ Bucket, ...markers }));
    for (const { Key, UploadId } of page.Uploads ?? []) {
      await unlessMissing(() => aws.s3.send(new AbortMultipartUploadCommand({ Bucket, Key, UploadId })), "NoSuchUpload");
      aborted += 1;
    }
    if (!page.IsTruncated) return aborted;
    markers = { KeyMarker: page.NextKeyMarker, UploadIdMarker: page.NextUploadIdMarker };
  }
}

async function emptyAndDeleteBucket(aws: AwsClients, Bucket: string): Promise<{ deleted: number; aborted: number }> {
  const aborted = await abortOpenUploads(aws, Bucket);
  let deleted = 0;
  for await (const page of paginateListObjectsV2({ client: aws.s3 }, { Bucket })) {
    const objects = (page.Contents ?? []).flatMap((object) => (object.Key ? [{ Key: object.Key }] : []));
    if (objects.length === 0) continue;
    await aws.s3.send(new DeleteObjectsCommand({ Bucket, Delete: { Objects: objects, Quiet: true } }));
    deleted += objects.length;
  }
  await aws.s3.send(new DeleteBucketCommand({ Bucket }));
  return { deleted, aborted };
}

/** DeleteRole answers DeleteConflict while the role has inline policies or attached managed ones (AmazonSSMManagedInstanceCore, say). */
async function deleteRole(aws: AwsClients, RoleName: string): Promise<string[]> {
  const { PolicyNames } = await aws.iam.send(new ListRolePoliciesCommand({ RoleName }));
  for (const PolicyName of PolicyNames ?? []) await aws.iam.send(new DeleteRolePolicyCommand({ RoleName, PolicyName }));
  const detached: string[] = [];
  let Marker: string | undefined;
  do {
    const page = await aws.iam.send(new ListAttachedRolePoliciesCommand({ RoleName, Marker }));
    for (const { PolicyArn } of page.AttachedPolicies ?? []) {
      await aws.iam.send(new DetachRolePolicyCommand({ RoleName, PolicyArn }));
      detached.push(PolicyArn ?? "");
    }
    Marker = page.IsTruncated ? page.Marker : undefined;
  } while (Marker);
  await aws.iam.send(new DeleteRoleCommand({ RoleName }));
  return detached;
}

async function deleteInstanceProfile(aws: AwsClients, InstanceProfileName: string): Promise<void> {
  const { InstanceProfile } = await aws.iam.send(new GetInstanceProfileCommand({ InstanceProfileName }));
  for (const role of InstanceProfile?.Roles ?? []) {
    await aws.iam.send(new RemoveRoleFromInstanceProfileCommand({ InstanceProfileName, RoleName: role.RoleName }));
  }
  await aws.iam.send(new DeleteInstanceProfileCommand({ InstanceProfileName }));
}

async function tearDown(aws: AwsClients, inventory: Inventory, context: ScriptContext): Promise<void> {
  const { out, options } = context;
  const wait = { timeoutSeconds: 600, pollSeconds: options.pollSeconds };
  if (inventory.instances.length > 0) {
    await out.step(`terminate ${inventory.instances.length} instances`, async () => {
      await aws.ec2.send(new TerminateInstancesCommand({ InstanceIds: inventory.instances }));
      // Security groups and the instance profile stay in use until the instances are gone.
      await waitForStates(aws, inventory.instances, ["terminated"], wait);
    });
  }
  for (const ImageId of inventory.images) {
    await out.step(`deregister image ${ImageId} and its snapshots`, () => aws.ec2.send(new DeregisterImageCommand({ ImageId, DeleteAssociatedSnapshots: true })));
  }
  for (const LaunchTemplateId of inventory.launchTemplates) {
    await out.step(`delete launch template ${LaunchTemplateId}`, () => aws.ec2.send(new DeleteLaunchTemplateCommand({ LaunchTemplateId })));
  }
  for (const GroupId of inventory.securityGroups) {
    await out.step(`delete security group ${GroupId}`, () =>
      // A terminated instance's network interface can hold the group for a little while.
      waitUntil(
        `security group ${GroupId} to be free`,
        () =>
          aws.ec2.send(new DeleteSecurityGroupCommand({ GroupId })).then(
            () => true,
            (error: unknown) => {
              if (isAwsError(error, "DependencyViolation")) return undefined;
              throw error;
            },
          ),
        wait,
      ),
    );
  }
  for (const QueueUrl of inventory.queueUrls) {
    await out.step(`delete queue ${QueueUrl}`, () => aws.sqs.send(new DeleteQueueCommand({ QueueUrl })));
  }
  for (const bucket of inventory.buckets) {
    await out.step(`empty and delete bucket ${bucket}`, async () => {
      const { deleted, aborted } = await emptyAndDeleteBucket(aws, bucket);
      out.line(`        (${deleted} objects deleted${aborted > 0 ? `, ${aborted} incomplete multipart uploads aborted` : ""})`);
    });
  }
  for (const name of inventory.instanceProfiles) await out.step(`delete instance profile ${name}`, () => deleteInstanceProfile(aws, name));
  for (const name of inventory.roles) {
    const detached = await out.step(`delete role ${name}, its inline policies and the managed policies attached to it`, () => deleteRole(aws, name));
    if (detached.length > 0) out.line(`        (detached ${detached.join(", ")})`);
  }
}

await runScript("teardown", async (context) => {
  const { config, options, out } = context;
  const aws = await awsClients();
  try {
    const inventory = await out.step(`find everything tagged ${DEPLOYMENT_TAG}=${config.prefix}`, () => takeInventory(aws, context));
    if (inventorySize(inventory) === 0) {
      out.line(`nothing tagged ${DEPLOYMENT_TAG}=${config.prefix} in ${aws.region}`);
    } else {
      for (const [kind, items] of Object.entries(inventory)) if (items.length > 0) out.line(`  ${kind}: ${items.join(", ")}`);
      if (options.dryRun) return;
      if (!options.yes && !(await confirm(`delete these ${inventorySize(inventory)} resources and every object in the buckets?`))) {
        out.line("nothing deleted");
        return;
      }
      await tearDown(aws, inventory, context);
      // Deleted resources can stay listed for a while on AWS: look again until they are gone.
      let left = inventory;
      await out.step("check that nothing is left", () =>
        waitUntil(
          () => `nothing tagged ${DEPLOYMENT_TAG}=${config.prefix} (still there: ${JSON.stringify(left)})`,
          async () => {
            left = await takeInventory(aws, context);
            return inventorySize(left) === 0 ? true : undefined;
          },
          { timeoutSeconds: GONE_TIMEOUT_SECONDS, pollSeconds: options.pollSeconds },
        ),
      );
    }
    removeState(stateFilePath(config.prefix, options.stateFile));
    out.line(`deployment '${config.prefix}' is gone`);
  } finally {
    destroyClients(aws);
  }
});

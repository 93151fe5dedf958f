/**
 * `bun run infra/bake-ami.ts --image ami-... [--builder-instance-type TYPE] [--dry-run]`
 * Bakes the deployment's AMI from a stock Amazon Linux 2023 image: puts a tarball of the project (the files git
 * tracks, as they are in the working tree) in the input bucket, boots a builder from the launch template with user
 * data that installs Bun, the project and its models, a service user and a systemd unit, waits for it to report
 * and power off, images it, tags the image, terminates the builder and makes the image the launch template's default.
 */
import { CreateImageCommand, DescribeImagesCommand, DescribeInstancesCommand, RunInstancesCommand, TerminateInstancesCommand, type _InstanceType } from "@aws-sdk/client-ec2";
import { DeleteObjectsCommand, GetObjectCommand, HeadObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import { awsClients, destroyClients, IMAGE_NOT_FOUND, INSTANCE_NOT_FOUND, isAwsError, toTagList, unlessMissing, type AwsClients } from "./aws.ts";
import { newDefaultVersion } from "./launch-template.ts";
import { BAKE_KEY_PREFIX, BAKE_MARKERS, BAKE_TARBALL, instanceRoleNames } from "./policies.ts";
import { DEPLOYMENT_TAG } from "../roles/deployment.ts";
import { runScript, UsageError, waitUntil, type ScriptContext } from "./script.ts";
import { appNetworkOf, requireState, stateFilePath, writeState, type DeploymentState } from "./state.ts";
import { packProject } from "./project-tarball.ts";
import { builderUserData } from "./user-data.ts";

async function objectExists(aws: AwsClients, Bucket: string, Key: string): Promise<boolean> {
  try {
    await aws.s3.send(new HeadObjectCommand({ Bucket, Key }));
    return true;
  } catch (error) {
    if (isAwsError(error, "NotFound", "NoSuchKey")) return false;
    throw error;
  }
}

/** Waits for the builder to power itself off, then reads its verdict from the marker objects. */
async function awaitBuilder(aws: AwsClients, instanceId: string, bucket: string, markerPrefix: string, context: ScriptContext): Promise<void> {
  const { options } = context;
  const state = await waitUntil(
    `builder ${instanceId} to stop`,
    async () => {
      const described = await unlessMissing(() => aws.ec2.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] })), INSTANCE_NOT_FOUND);
      const name = described?.Reservations?.[0]?.Instances?.[0]?.State?.Name;
      return name === "stopped" || name === "terminated" ? name : undefined;
    },
    { timeoutSeconds: options.bakeTimeoutSeconds, pollSeconds: options.pollSeconds },
  );
  if (await objectExists(aws, bucket, `${markerPrefix}done`)) return;
  if (await objectExists(aws, bucket, `${markerPrefix}failed`)) {
    const log = await aws.s3.send(new GetObjectCommand({ Bucket: bucket, Key: `${markerPrefix}failed` }));
    const tail = ((await log.Body?.transformToString()) ?? "").split("\n").slice(-30).join("\n");
    throw new Error(`the builder failed; the end of its log:\n${tail}`);
  }
  throw new Error(`builder ${instanceId} is ${state} without reporting: see /var/log/facefleet-bake.log on it`);
}

async function bake(context: ScriptContext, state: DeploymentState, image: string): Promise<void> {
  const { config, options, out } = context;
  const launchTemplateId = state.launchTemplateId;
  const bucket = state.buckets.in;
  if (!launchTemplateId || !bucket) throw new Error("the state file has no launch template or input bucket: run infra/bootstrap.ts first");
  const project = packProject();
  // An image of uncommitted edits says so in its name and Commit tag.
  const commit = project.modified ? `${project.commit}-modified` : project.commit;
  const bakeId = `${commit}-${Date.now().toString(36)}`;
  const markerPrefix = `${BAKE_KEY_PREFIX}${bakeId}/`;
  const tarballKey = `${markerPrefix}${BAKE_TARBALL}`;
  const tags = { [DEPLOYMENT_TAG]: config.prefix };

  if (options.dryRun) {
    out.line(`would pack the project at ${commit} to s3://${bucket}/${tarballKey}, boot a ${options.builderInstanceType} builder from ${image}`);
    out.line(`would image it as ${config.prefix}-${bakeId}, terminate the builder and make the image launch template ${launchTemplateId}'s default`);
    return;
  }

  const aws = await awsClients();
  let builderId: string | undefined;
  try {
    await out.step(`upload the project at ${commit} (${(project.bytes.byteLength / 1e6).toFixed(1)} MB, the files git tracks) to s3://${bucket}/${tarballKey}`, () =>
      aws.s3.send(new PutObjectCommand({ Bucket: bucket, Key: tarballKey, Body: project.bytes, ContentType: "application/gzip" })),
    );
    const userData = builderUserData({ bucket, tarballKey, markerPrefix, region: aws.region, config: { ...config, appNetwork: config.appNetwork ?? appNetworkOf(state) } });
    builderId = await out.step(`boot a ${options.builderInstanceType} builder from ${image}`, async () => {
      const launch = new RunInstancesCommand({
        MinCount: 1,
        MaxCount: 1,
        ImageId: image,
        InstanceType: options.builderInstanceType as _InstanceType,
        LaunchTemplate: { LaunchTemplateId: launchTemplateId, Version: "$Default" },
        UserData: Buffer.from(userData).toString("base64"),
        InstanceInitiatedShutdownBehavior: "stop",
        // The template carries the app profile; the builder reads its tarball and writes its marker, nothing else.
        IamInstanceProfile: { Name: instanceRoleNames(config.prefix).builder.profileName },
        TagSpecifications: [{ ResourceType: "instance", Tags: toTagList({ ...tags, Name: `${config.prefix}-ami-builder` }) }],
      });
      // EC2 refuses an instance profile for a few seconds after IAM created it.
      const { Instances } = await waitUntil(
        "the instance profile to become usable",
        () =>
          aws.ec2.send(launch).catch((error: Error) => {
            if (isAwsError(error, "InvalidParameterValue") && /iamInstanceProfile/i.test(error.message)) return undefined;
            throw error;
          }),
        { timeoutSeconds: 60, pollSeconds: options.pollSeconds },
      );
      const id = Instances?.[0]?.InstanceId;
      if (!id) throw new Error("RunInstances returned no instance");
      return id;
    });
    const builder = builderId;
    await out.step(`wait for builder ${builder} to install everything and power off (up to ${options.bakeTimeoutSeconds} s)`, () =>
      awaitBuilder(aws, builder, bucket, markerPrefix, context),
    );
    const imageId = await out.step(`create image ${config.prefix}-${bakeId}`, async () => {
      const { ImageId } = await aws.ec2.send(
        new CreateImageCommand({
          InstanceId: builder,
          Name: `${config.prefix}-${bakeId}`,
          Description: `facefleet ${config.prefix} at ${commit}`,
          TagSpecifications: [
            { ResourceType: "image", Tags: toTagList({ ...tags, Commit: commit }) },
            { ResourceType: "snapshot", Tags: toTagList(tags) },
          ],
        }),
      );
      if (!ImageId) throw new Error("CreateImage returned no image id");
      return ImageId;
    });
    await out.step(`wait for ${imageId} to become available`, () =>
      waitUntil(
        `image ${imageId}`,
        async () => {
          const described = await unlessMissing(() => aws.ec2.send(new DescribeImagesCommand({ ImageIds: [imageId] })), IMAGE_NOT_FOUND);
          const imageState = described?.Images?.[0]?.State;
          if (imageState === "failed" || imageState === "error") throw new Error(`image ${imageId} is ${imageState}`);
          return imageState === "available" ? imageState : undefined;
        },
        { timeoutSeconds: options.bakeTimeoutSeconds, pollSeconds: options.pollSeconds },
      ),
    );
    const version = await out.step(`make ${imageId} the image of launch template ${launchTemplateId}`, () =>
      newDefaultVersion(aws.ec2, launchTemplateId, { ImageId: imageId }),
    );
    writeState(stateFilePath(config.prefix, options.stateFile), { prefix: config.prefix, region: aws.region, imageId });
    out.line(`image ${imageId} baked from ${commit}; launch template version ${version} uses it`);
  } finally {
    if (builderId) {
      const id = builderId;
      await out.step(`terminate builder ${id}`, () => aws.ec2.send(new TerminateInstancesCommand({ InstanceIds: [id] })));
    }
    await out.step(`remove s3://${bucket}/${markerPrefix}*`, () =>
      aws.s3.send(
        new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: [BAKE_TARBALL, ...BAKE_MARKERS].map((name) => ({ Key: markerPrefix + name })) } }),
      ),
    );
    destroyClients(aws);
  }
}

await runScript("bake-ami", async (context) => {
  if (!context.options.image) throw new UsageError("--image ami-... is required: a stock Amazon Linux 2023 image of your region");
  const state = requireState(stateFilePath(context.config.prefix, context.options.stateFile));
  await bake(context, state, context.options.image);
});

/** CreateImage, DescribeImages, DeregisterImage. */
import { QueryError, text, texts } from "../../query-protocol.ts";
import type { Ec2Handler } from "../context.ts";
import { filtersOf, matchesFilters, paginate } from "../filters.ts";
import { blockDeviceMappingsXml, tagSpecificationsOf } from "../launch-spec.ts";
import { ACCOUNT_ID, ROOT_DEVICE_NAME, STOCK_IMAGE_MAPPINGS, type Image } from "../model.ts";
import { tagSet } from "../render.ts";
import { imageRootMapping } from "./instances.ts";

/** The image keeps the instance's root volume directory as its snapshot: the emulated builder powers off before, so nothing writes it after. */
const createImage: Ec2Handler = (params, { store, volumeOf }) => {
  const instanceId = text(params, "InstanceId") ?? "";
  const instance = store.instances.get(instanceId);
  if (!instance) throw new QueryError("InvalidInstanceID.NotFound", `The instance ID '${instanceId}' does not exist`);
  const name = text(params, "Name") ?? "";
  if ([...store.images.values()].some((image) => image.name === name)) {
    throw new QueryError("InvalidAMIName.Duplicate", `AMI name ${name} is already in use by AMI ${[...store.images.values()].find((image) => image.name === name)!.id}`);
  }
  const image: Image = {
    id: store.newId("ami"),
    name,
    description: text(params, "Description"),
    state: "available",
    creationDate: new Date(),
    sourceInstanceId: instanceId,
    rootDir: volumeOf(instance),
    blockDeviceMappings: imageRootMapping(instance, store.newId("snap")),
  };
  store.images.set(image.id, image);
  for (const spec of tagSpecificationsOf(params)) if (spec.resourceType === "image") store.addTags(image.id, spec.tags);
  return { imageId: image.id };
};

const describeImages: Ec2Handler = (params, { store, readAfterCreateLagMs }) => {
  const ids = texts(params, "ImageId");
  for (const id of ids) {
    const image = store.images.get(id);
    if (!image || Date.now() - image.creationDate.getTime() < readAfterCreateLagMs) throw new QueryError("InvalidAMIID.NotFound", `The image id '[${id}]' does not exist`);
  }
  const candidates = ids.length ? ids.map((id) => store.images.get(id)!) : [...store.images.values()];
  const filters = filtersOf(params);
  const matching = candidates.filter((image) =>
    matchesFilters(filters, { "image-id": image.id, name: image.name, state: image.state, "owner-id": ACCOUNT_ID }, store.tagsOf(image.id)),
  );
  const { page, nextToken } = paginate(matching, params);
  return {
    imagesSet: page.map((image) => ({
      imageId: image.id,
      imageLocation: `${ACCOUNT_ID}/${image.name}`,
      imageState: image.state,
      imageOwnerId: ACCOUNT_ID,
      creationDate: image.creationDate.toISOString(),
      isPublic: false,
      architecture: "x86_64",
      imageType: "machine",
      name: image.name,
      description: image.description,
      rootDeviceType: "ebs",
      rootDeviceName: ROOT_DEVICE_NAME,
      blockDeviceMapping: blockDeviceMappingsXml(image.blockDeviceMappings ?? STOCK_IMAGE_MAPPINGS),
      virtualizationType: "hvm",
      tagSet: tagSet(store.tagsOf(image.id)),
    })),
    nextToken,
  };
};

const deregisterImage: Ec2Handler = (params, { store }) => {
  const id = text(params, "ImageId") ?? "";
  if (!store.images.delete(id)) throw new QueryError("InvalidAMIID.NotFound", `The image id '[${id}]' does not exist`);
  store.tags.delete(id);
  return { return: true };
};

export const imageActions: Record<string, Ec2Handler> = { CreateImage: createImage, DescribeImages: describeImages, DeregisterImage: deregisterImage };

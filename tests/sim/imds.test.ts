// One instance's IMDSv2 over plain HTTP: the token handshake, what needs a token, tags and identity.
import { afterAll, beforeAll, expect, test } from "bun:test";
import type { Instance } from "../../infra/sim/ec2/model.ts";
import { startImds, type ImdsServer } from "../../infra/sim/imds/server.ts";

const instance: Instance = {
  id: "i-0abc",
  reservationId: "r-1",
  launchIndex: 0,
  imageId: "ami-1",
  instanceType: "t3.micro",
  launchTime: new Date("2026-01-01T00:00:00Z"),
  state: "running",
  metadataOptions: { httpTokens: "required", httpEndpoint: "enabled", httpPutResponseHopLimit: 1, instanceMetadataTags: "enabled" },
  securityGroupIds: [],
  subnetId: "subnet-1",
  vpcId: "vpc-1",
  shutdownBehavior: "stop",
  privateIp: "10.0.0.9",
  volumes: [],
};
const tags: Record<string, string> = { Role: "controller", Deployment: "imds-test" };
let imds: ImdsServer;

beforeAll(() => {
  imds = startImds({ instance, region: "eu-west-1", tags: () => tags, roleOf: () => undefined, credentials: { accessKeyId: "a", secretAccessKey: "b" } });
});

afterAll(() => imds.stop());

const token = async (ttl = "60") => {
  const response = await fetch(`${imds.endpoint}/latest/api/token`, { method: "PUT", headers: { "x-aws-ec2-metadata-token-ttl-seconds": ttl } });
  return { status: response.status, token: await response.text() };
};
const get = (path: string, sessionToken?: string) => fetch(`${imds.endpoint}${path}`, { headers: sessionToken ? { "x-aws-ec2-metadata-token": sessionToken } : {} });

test("a token needs a TTL between 1 and 21600 s; GETs need a valid token when tokens are required", async () => {
  expect((await token("0")).status).toBe(400);
  expect((await token("21601")).status).toBe(400);
  expect((await get("/latest/meta-data/instance-id")).status).toBe(401);
  expect((await get("/latest/meta-data/instance-id", "forged")).status).toBe(401);
  const session = await token();
  expect(session.status).toBe(200);
  expect(await (await get("/latest/meta-data/instance-id", session.token)).text()).toBe("i-0abc");
});

test("tags list their keys and answer each value, live; identity document and region", async () => {
  const { token: session } = await token();
  expect((await (await get("/latest/meta-data/tags/instance", session)).text()).split("\n")).toEqual(["Role", "Deployment"]);
  tags.Role = "web";
  expect(await (await get("/latest/meta-data/tags/instance/Role", session)).text()).toBe("web");
  expect((await get("/latest/meta-data/tags/instance/Missing", session)).status).toBe(404);
  expect(await (await get("/latest/meta-data/placement/region", session)).text()).toBe("eu-west-1");
  expect(await (await get("/latest/dynamic/instance-identity/document", session)).json()).toMatchObject({ instanceId: "i-0abc", region: "eu-west-1", imageId: "ami-1" });
  expect((await get("/latest/meta-data/iam/security-credentials/", session)).status).toBe(404);
  instance.metadataOptions.instanceMetadataTags = "disabled";
  expect((await get("/latest/meta-data/tags/instance/Role", session)).status).toBe(404);
});

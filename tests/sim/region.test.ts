// The emulated region end to end: instances are real processes that find their identity, role tag and credentials
// through the SDK's own metadata client and credential chain, and end with their instance.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { DescribeInstancesCommand, EC2Client, RunInstancesCommand, StartInstancesCommand, StopInstancesCommand, TerminateInstancesCommand } from "@aws-sdk/client-ec2";
import { AddRoleToInstanceProfileCommand, CreateInstanceProfileCommand, CreateRoleCommand, IAMClient, PutRolePolicyCommand } from "@aws-sdk/client-iam";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { startRegion, type EmulatedRegion } from "../../infra/sim/region.ts";
import { SYSTEMD_UNIT_FILE, systemdUnit } from "../../infra/user-data.ts";

// Servers, processes or networks: a test may take seconds on a loaded 2-core CI machine.
setDefaultTimeout(30_000);

const PROBE = join(import.meta.dir, "instance-probe.ts");

let region: EmulatedRegion;
let ec2: EC2Client;
let image: string;

const isAlive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

async function waitForFile(path: string, timeoutMs = 10_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  while (!existsSync(path) || Bun.file(path).size === 0) {
    if (Date.now() > deadline) throw new Error(`${path} was not written within ${timeoutMs} ms`);
    await Bun.sleep(20);
  }
  return Bun.file(path).text();
}

async function launch(tags: Record<string, string>, extra: { metadataTags?: "enabled" | "disabled"; profile?: string; imageId?: string } = {}): Promise<string> {
  const { Instances } = await ec2.send(
    new RunInstancesCommand({
      ImageId: extra.imageId ?? image,
      MinCount: 1,
      MaxCount: 1,
      MetadataOptions: { HttpTokens: "required", InstanceMetadataTags: extra.metadataTags ?? "enabled" },
      IamInstanceProfile: extra.profile ? { Name: extra.profile } : undefined,
      TagSpecifications: [{ ResourceType: "instance", Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })) }],
    }),
  );
  return Instances![0]!.InstanceId!;
}

beforeAll(async () => {
  region = await startRegion({
    // These instances have no instance profile, so no permissions: the calls they make are not what is tested here.
    enforceInstanceRoles: false,
    killGraceMs: 3000,
    // The probe in place of `bun index.ts`, run as its image's unit says (a stock image has none: the probe then plays a
    // script that powers the instance off when it ends).
    instanceProcess: (instance, fromImage) => {
      const exitCode = region.ec2.store.tagsOf(instance.id).Exit;
      return {
        command: [process.execPath, PROBE],
        env: { PROBE_OUT: join(region.logDir, `${instance.id}.probe.json`), ...(exitCode !== undefined && { PROBE_EXIT_CODE: exitCode }) },
        service: fromImage?.service,
      };
    },
  });
  ec2 = new EC2Client({ ...region.clientConfig, endpoint: region.endpoints.ec2 });
  image = Object.values(region.ec2.stockImages)[0]!;
});

afterAll(async () => {
  ec2.destroy();
  await region.stop();
});

/** An image as the bake leaves one, as far as systemd is concerned: its root volume holds `unit` as the service's unit file. */
function bakedImage(unit: string): string {
  const rootDir = mkdtempSync(join(region.logDir, "image-"));
  mkdirSync(dirname(join(rootDir, SYSTEMD_UNIT_FILE)), { recursive: true });
  writeFileSync(join(rootDir, SYSTEMD_UNIT_FILE), unit);
  const id = region.ec2.store.newId("ami");
  region.ec2.store.images.set(id, { id, name: `baked-${id}`, state: "available", creationDate: new Date(), rootDir });
  return id;
}

/** How many times the probe has started on the instance whose log this is. */
const probeStarts = (logPath: string) => (existsSync(logPath) ? readFileSync(logPath, "utf8").split("\n").filter((line) => /^probe \d+ up$/.test(line)).length : 0);

async function waitFor(what: string, done: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await Bun.sleep(20);
  }
}

const probeOf = (instanceId: string) => waitForFile(join(region.logDir, `${instanceId}.probe.json`)).then((text) => JSON.parse(text) as Record<string, string>);

describe("an instance process", () => {
  test("reads its id, region and Role tag through IMDSv2 and calls EC2 with the region's endpoint", async () => {
    const id = await launch({ Role: "app" });
    const probe = await probeOf(id);
    expect(probe).toMatchObject({ instanceId: id, role: "app", region: "us-east-1", stateSeenByEc2: "running" });
  });

  test("metadata tags disabled: the tag path answers 404", async () => {
    const id = await launch({ Role: "web" }, { metadataTags: "disabled" });
    expect((await probeOf(id)).role).toBe("status 404");
  });

  test("stop sends SIGTERM and the instance is stopped once the process has ended; start runs it again", async () => {
    const id = await launch({ Role: "app" });
    await probeOf(id);
    const { pid, logPath } = region.ec2.instances().find((instance) => instance.id === id)!;
    expect(isAlive(pid!)).toBe(true);
    expect(await Bun.file(logPath).text()).toContain(`probe ${pid} up`);
    await ec2.send(new StopInstancesCommand({ InstanceIds: [id] }));
    await region.ec2.waitForState(id, "stopped");
    expect(isAlive(pid!)).toBe(false);
    expect(existsSync(join(region.logDir, `${id}.probe.json.sigterm`))).toBe(true);
    await ec2.send(new StartInstancesCommand({ InstanceIds: [id] }));
    await region.ec2.waitForState(id, "running");
    const restarted = region.ec2.instances().find((instance) => instance.id === id)!.pid!;
    expect(restarted).not.toBe(pid);
    expect(isAlive(restarted)).toBe(true);
    await ec2.send(new TerminateInstancesCommand({ InstanceIds: [id] }));
    await region.ec2.waitForState(id, "terminated");
    expect(isAlive(restarted)).toBe(false);
  });

  test("a script (no unit: a stock image's) that exits powers its instance off; a SIGKILLed one too", async () => {
    const exiting = await launch({ Role: "app", Exit: "1" });
    await region.ec2.waitForState(exiting, "stopped");
    const { Reservations } = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [exiting] }));
    expect(Reservations![0]!.Instances![0]!.StateReason?.Code).toBe("Client.InstanceInitiatedShutdown");

    const killed = await launch({ Role: "app" });
    await probeOf(killed);
    expect(region.ec2.killProcess(killed)).toBe(true);
    await region.ec2.waitForState(killed, "stopped");
    expect(existsSync(join(region.logDir, `${killed}.probe.json.sigterm`))).toBe(false);
  });

  test("a service SIGKILLed is restarted by its unit (the one the bake writes) after RestartSec, and the instance stays running", async () => {
    const id = await launch({ Role: "app" }, { imageId: bakedImage(systemdUnit()) });
    await probeOf(id);
    const { pid, logPath } = region.ec2.instances().find((instance) => instance.id === id)!;
    const killedAt = performance.now();
    expect(region.ec2.killProcess(id)).toBe(true);
    await waitFor("the service started again", () => probeStarts(logPath) === 2, 15_000);
    const restartedAfterMs = performance.now() - killedAt;
    expect(region.ec2.store.instances.get(id)!.state).toBe("running");
    expect(restartedAfterMs).toBeGreaterThanOrEqual(4500);
    const restarted = region.ec2.instances().find((instance) => instance.id === id)!.pid!;
    expect(restarted).not.toBe(pid);
    expect(isAlive(restarted)).toBe(true);
  });

  test("a service that exits 0 under Restart=on-failure is not restarted: the instance stays running without it", async () => {
    const id = await launch({ Role: "app", Exit: "0" }, { imageId: bakedImage(systemdUnit().replace("RestartSec=5", "RestartSec=0.1")) });
    await probeOf(id);
    const { logPath } = region.ec2.instances().find((instance) => instance.id === id)!;
    await waitFor("the service gone", () => region.ec2.instances().find((instance) => instance.id === id)!.pid === undefined, 10_000);
    await Bun.sleep(1000);
    expect(probeStarts(logPath)).toBe(1);
    expect(region.ec2.store.instances.get(id)!.state).toBe("running");
  });

  test("a service failing again and again is started StartLimitBurst times within StartLimitIntervalSec, then left failed; the instance runs on", async () => {
    const unit = systemdUnit().replace("StartLimitIntervalSec=0", "StartLimitIntervalSec=60\nStartLimitBurst=3").replace("RestartSec=5", "RestartSec=0.1");
    const id = await launch({ Role: "app", Exit: "3" }, { imageId: bakedImage(unit) });
    const { logPath } = region.ec2.instances().find((instance) => instance.id === id)!;
    await waitFor("three starts", () => probeStarts(logPath) === 3, 15_000);
    await Bun.sleep(1500);
    expect(probeStarts(logPath)).toBe(3);
    expect(region.ec2.store.instances.get(id)!.state).toBe("running");
  });

  test("stop() of the region ends every instance process", async () => {
    const id = await launch({ Role: "app" });
    await probeOf(id);
    const pids = region.ec2.instances().flatMap((instance) => (instance.pid ? [instance.pid] : []));
    expect(pids.length).toBeGreaterThan(0);
    await region.stop();
    expect(pids.filter(isAlive)).toEqual([]);
  });
});

describe("an instance with an instance profile and no access keys", () => {
  test("gets the role's credentials from its metadata service through the SDK's default chain", async () => {
    const keyless = await startRegion({
      credentialsFromImds: true,
      instanceProcess: (instance) => ({ command: [process.execPath, PROBE], env: { PROBE_OUT: join(keyless.logDir, `${instance.id}.probe.json`) } }),
    });
    const iam = new IAMClient({ ...keyless.clientConfig, endpoint: keyless.endpoints.iam });
    const keylessEc2 = new EC2Client({ ...keyless.clientConfig, endpoint: keyless.endpoints.ec2 });
    try {
      await iam.send(new CreateRoleCommand({ RoleName: "fleet-role", AssumeRolePolicyDocument: "{}" }));
      await iam.send(new CreateInstanceProfileCommand({ InstanceProfileName: "fleet-profile" }));
      await iam.send(new AddRoleToInstanceProfileCommand({ InstanceProfileName: "fleet-profile", RoleName: "fleet-role" }));
      // The region holds the instance's calls to its role: the probe's DescribeInstances must be granted.
      const describe = { Version: "2012-10-17", Statement: [{ Sid: "Describe", Effect: "Allow", Action: "ec2:DescribeInstances", Resource: "*" }] };
      await iam.send(new PutRolePolicyCommand({ RoleName: "fleet-role", PolicyName: "describe", PolicyDocument: JSON.stringify(describe) }));
      const { Instances } = await keylessEc2.send(
        new RunInstancesCommand({ ImageId: Object.values(keyless.ec2.stockImages)[0], MinCount: 1, MaxCount: 1, IamInstanceProfile: { Name: "fleet-profile" } }),
      );
      const id = Instances![0]!.InstanceId!;
      const probe = JSON.parse(await waitForFile(join(keyless.logDir, `${id}.probe.json`))) as Record<string, string>;
      expect(probe.sessionToken).toBe("emulated-session-for-fleet-role");
      expect(probe.stateSeenByEc2).toBe("running");
    } finally {
      iam.destroy();
      keylessEc2.destroy();
      await keyless.stop();
    }
  });
});

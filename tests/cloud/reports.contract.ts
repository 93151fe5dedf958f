/** The behaviour every JobReports must have, local or on S3. */
import { expect, test } from "bun:test";
import type { JobReports } from "../../roles/cloud/types.ts";

export function reportsContract(makeReports: () => Promise<JobReports>): void {
  test("an instance that never wrote has no report; a write is read back at once and replaces the previous one", async () => {
    const reports = await makeReports();
    expect(await reports.read(["i-0000000000000000a"])).toEqual([]);
    await reports.write({ instanceId: "i-0000000000000000a", jobs: 2, at: 1000 });
    expect(await reports.read(["i-0000000000000000a"])).toEqual([{ instanceId: "i-0000000000000000a", jobs: 2, at: 1000 }]);
    await reports.write({ instanceId: "i-0000000000000000a", jobs: 0, at: 2000 });
    expect(await reports.read(["i-0000000000000000a"])).toEqual([{ instanceId: "i-0000000000000000a", jobs: 0, at: 2000 }]);
  });

  test("each instance has its own report; read gives those asked for; remove deletes one", async () => {
    const reports = await makeReports();
    await reports.write({ instanceId: "i-0000000000000000b", jobs: 1, at: 1 });
    await reports.write({ instanceId: "i-0000000000000000c", jobs: 3, at: 2 });
    expect(await reports.read(["i-0000000000000000c", "i-0000000000000000d"])).toEqual([{ instanceId: "i-0000000000000000c", jobs: 3, at: 2 }]);
    await reports.remove("i-0000000000000000b");
    await reports.remove("i-0000000000000000d");
    expect(await reports.read(["i-0000000000000000b", "i-0000000000000000c"])).toEqual([{ instanceId: "i-0000000000000000c", jobs: 3, at: 2 }]);
  });

  test("a report is stored as written: changing the written or the read object afterwards changes nothing stored", async () => {
    const reports = await makeReports();
    const written = { instanceId: "i-0000000000000000e", jobs: 1, at: 1 };
    await reports.write(written);
    written.jobs = 7;
    const [read] = await reports.read(["i-0000000000000000e"]);
    read!.jobs = 9;
    expect(await reports.read(["i-0000000000000000e"])).toEqual([{ instanceId: "i-0000000000000000e", jobs: 1, at: 1 }]);
  });
}

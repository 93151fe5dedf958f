// The emulated S3 checks PutBucketLifecycleConfiguration as AWS does (fauxqs alone stores any body), and the integrity
// header it and the other calls of ours that need one require: refusals as tables, then over HTTP with the SDK: every
// configuration bootstrap puts is taken, a refused one stores nothing, each call that requires the header is taken from
// the SDK and changes nothing without it, and a change of the configuration (a PUT replaces it whole, a DELETE removes
// it) reads back as it was while it propagates.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { EC2Client } from "@aws-sdk/client-ec2";
import { IAMClient } from "@aws-sdk/client-iam";
import {
  CreateBucketCommand,
  DeleteBucketLifecycleCommand,
  DeleteObjectsCommand,
  GetBucketEncryptionCommand,
  GetBucketLifecycleConfigurationCommand,
  GetBucketTaggingCommand,
  GetPublicAccessBlockCommand,
  ListObjectsV2Command,
  PutBucketEncryptionCommand,
  PutBucketLifecycleConfigurationCommand,
  PutBucketTaggingCommand,
  PutObjectCommand,
  PutPublicAccessBlockCommand,
  S3Client,
  type LifecycleRule,
} from "@aws-sdk/client-s3";
import { SQSClient } from "@aws-sdk/client-sqs";
import { applyChanges, knownResources } from "../../infra/apply.ts";
import { desiredState, planChanges, type ActualState } from "../../infra/plan.ts";
import { consoleOutput } from "../../infra/script.ts";
import { startS3AndSqs, type S3SqsEmulator } from "../../infra/sim/fauxqs.ts";
import { INTEGRITY_REQUIRED, integrityRefusal, integrityRequiredBy, type S3Refusal } from "../../infra/sim/s3-integrity.ts";
import { lifecycleConfigurationRefusal, MAX_LIFECYCLE_RULES, MAX_RULE_ID_LENGTH } from "../../infra/sim/s3-lifecycle.ts";
import { loadConfig } from "../../roles/config.ts";

setDefaultTimeout(30_000);

const configuration = (...rules: string[]) =>
  `<?xml version="1.0" encoding="UTF-8"?><LifecycleConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">${rules.map((rule) => `<Rule>${rule}</Rule>`).join("")}</LifecycleConfiguration>`;
const expiring = (id: string, days = "1") => `<ID>${id}</ID><Status>Enabled</Status><Filter><Prefix>a/</Prefix></Filter><Expiration><Days>${days}</Days></Expiration>`;
const aborting = (days: string, filter = "<Prefix></Prefix>") => `<ID>abort</ID><Status>Enabled</Status><Filter>${filter}</Filter><AbortIncompleteMultipartUpload><DaysAfterInitiation>${days}</DaysAfterInitiation></AbortIncompleteMultipartUpload>`;
const rules = (count: number) => Array.from({ length: count }, (_, index) => expiring(`rule-${index}`));

describe("what the emulated S3 answers to a lifecycle configuration", () => {
  test.each<[string, string, S3Refusal["code"]]>([
    ["not XML", "rules, please", "MalformedXML"],
    ["an element left open", configuration(expiring("a")).replace("</LifecycleConfiguration>", ""), "MalformedXML"],
    ["a bare ampersand", configuration(expiring("a&b")), "MalformedXML"],
    ["two roots", configuration(expiring("a")) + "<LifecycleConfiguration/>", "MalformedXML"],
    ["another root", "<CORSConfiguration><Rule><Status>Enabled</Status></Rule></CORSConfiguration>", "MalformedXML"],
    ["no rule", configuration(), "MalformedXML"],
    [`${MAX_LIFECYCLE_RULES + 1} rules`, configuration(...rules(MAX_LIFECYCLE_RULES + 1)), "MalformedXML"],
    ["an element not in the schema", configuration(`${expiring("a")}<Owner>me</Owner>`), "MalformedXML"],
    ["Status twice", configuration(`${expiring("a")}<Status>Disabled</Status>`), "MalformedXML"],
    ["Status lower case", configuration(expiring("a").replace("Enabled", "enabled")), "MalformedXML"],
    ["no Status", configuration(expiring("a").replace("<Status>Enabled</Status>", "")), "MalformedXML"],
    [`an ID of ${MAX_RULE_ID_LENGTH + 1} characters`, configuration(expiring("i".repeat(MAX_RULE_ID_LENGTH + 1))), "InvalidArgument"],
    ["the same ID twice", configuration(expiring("same"), expiring("same")), "InvalidArgument"],
    ["both Filter and Prefix", configuration(`${expiring("a")}<Prefix>a/</Prefix>`), "MalformedXML"],
    ["neither Filter nor Prefix", configuration(expiring("a").replace("<Filter><Prefix>a/</Prefix></Filter>", "")), "MalformedXML"],
    ["a Filter of two predicates outside And", configuration(expiring("a").replace("</Prefix>", "</Prefix><Tag><Key>k</Key><Value>v</Value></Tag>")), "MalformedXML"],
    ["no action", configuration("<ID>a</ID><Status>Enabled</Status><Filter></Filter>"), "InvalidRequest"],
    ["Expiration Days 0", configuration(expiring("a", "0")), "InvalidArgument"],
    ["Expiration Days -1", configuration(expiring("a", "-1")), "InvalidArgument"],
    ["Expiration Days 1.5", configuration(expiring("a", "1.5")), "MalformedXML"],
    ["Expiration Days past an int", configuration(expiring("a", String(2 ** 31))), "MalformedXML"],
    ["Expiration Days empty", configuration(expiring("a", "")), "MalformedXML"],
    ["Expiration of both Days and Date", configuration(expiring("a").replace("</Days>", "</Days><Date>2027-01-01T00:00:00Z</Date>")), "MalformedXML"],
    ["an Expiration Date not at midnight", configuration(expiring("a").replace("<Days>1</Days>", "<Date>2027-01-01T12:00:00Z</Date>")), "InvalidArgument"],
    ["DaysAfterInitiation 0", configuration(aborting("0")), "InvalidArgument"],
    ["AbortIncompleteMultipartUpload without DaysAfterInitiation", configuration(aborting("1").replace("<DaysAfterInitiation>1</DaysAfterInitiation>", "")), "MalformedXML"],
    ["AbortIncompleteMultipartUpload with a tag filter", configuration(aborting("1", "<Tag><Key>k</Key><Value>v</Value></Tag>")), "InvalidRequest"],
    ["a Transition to an unknown storage class", configuration(expiring("a").replace("</Expiration>", "</Expiration><Transition><Days>30</Days><StorageClass>TAPE</StorageClass></Transition>")), "MalformedXML"],
  ])("refuses %s", (_, body, code) => {
    expect(lifecycleConfigurationRefusal(body)?.code).toBe(code);
  });

  test.each([
    [`${MAX_LIFECYCLE_RULES} rules`, configuration(...rules(MAX_LIFECYCLE_RULES))],
    [`an ID of ${MAX_RULE_ID_LENGTH} characters beyond one byte each`, configuration(expiring("é".repeat(MAX_RULE_ID_LENGTH)))],
    ["rules without IDs, disabled, of the legacy Prefix form and an empty Filter", configuration("<Status>Disabled</Status><Prefix>a/</Prefix><Expiration><Days>3</Days></Expiration>", aborting("7", ""))],
    ["elements in any order, escaped text, a comment", configuration("<Expiration><Days>1</Days></Expiration><!-- mine --><Filter><Prefix>a&amp;b/&#x41;</Prefix></Filter><Status>Enabled</Status>")],
  ])("takes %s", (_, body) => {
    expect(lifecycleConfigurationRefusal(body)).toBeUndefined();
  });
});

describe("the calls that require an integrity header", () => {
  test.each([
    ["PUT", "/b?lifecycle", "PutBucketLifecycleConfiguration"],
    ["PUT", "/b/?tagging=", "PutBucketTagging"],
    ["PUT", "/b?publicAccessBlock", "PutPublicAccessBlock"],
    ["PUT", "/b?encryption", "PutBucketEncryption"],
    ["POST", "/b/?delete=", "DeleteObjects"],
    ["POST", "/b?x-id=DeleteObjects&delete", "DeleteObjects"],
  ])("%s %s is %s", (method, path, call) => {
    expect(integrityRequiredBy(method, new URL(path, "http://s3"))).toBe(call);
  });

  test.each([
    ["GET", "/b?tagging", "GetBucketTagging"],
    ["DELETE", "/b?encryption", "DeleteBucketEncryption"],
    ["PUT", "/b", "CreateBucket"],
    ["PUT", "/b/delete", "PutObject of a key named like a subresource"],
    ["POST", "/b/k?uploads", "CreateMultipartUpload"],
  ])("%s %s (%s) is not one", (method, path) => {
    expect(integrityRequiredBy(method, new URL(path, "http://s3"))).toBeUndefined();
  });
});

describe("the integrity header a call requires", () => {
  const body = new TextEncoder().encode(configuration(expiring("a")));
  const base64 = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64");
  const md5 = base64(new Bun.CryptoHasher("md5").update(body).digest());
  const crc32 = Buffer.alloc(4);
  crc32.writeUInt32BE(Bun.hash.crc32(body));

  test.each<[string, Record<string, string>, S3Refusal["code"]]>([
    ["none", {}, "InvalidRequest"],
    ["an SDK algorithm without its checksum", { "x-amz-sdk-checksum-algorithm": "CRC32" }, "InvalidRequest"],
    ["two checksums", { "x-amz-checksum-crc32": base64(crc32), "x-amz-checksum-sha1": base64(new Bun.CryptoHasher("sha1").update(body).digest()) }, "InvalidRequest"],
    ["a CRC32 of the wrong length", { "x-amz-checksum-crc32": "AAAA" }, "InvalidRequest"],
    ["a CRC32 of another body", { "x-amz-checksum-crc32": "AAAAAA==" }, "BadDigest"],
    ["a Content-MD5 that is not one", { "content-md5": "abc" }, "InvalidDigest"],
    ["a Content-MD5 of another body", { "content-md5": base64(new Bun.CryptoHasher("md5").update("other").digest()) }, "BadDigest"],
  ])("refuses %s", (_, headers, code) => {
    expect(integrityRefusal(new Headers(headers), body)?.code).toBe(code);
  });

  test.each([
    ["Content-MD5", { "content-md5": md5 }],
    ["the SDK's CRC32", { "x-amz-checksum-crc32": base64(crc32), "x-amz-sdk-checksum-algorithm": "CRC32" }],
    ["a SHA256", { "x-amz-checksum-sha256": base64(new Bun.CryptoHasher("sha256").update(body).digest()) }],
  ])("takes %s", (_, headers) => {
    expect(integrityRefusal(new Headers(headers), body)).toBeUndefined();
  });
});

describe("over HTTP", () => {
  let emulator: S3SqsEmulator;
  let s3: S3Client;
  const clientConfig = () => ({ region: "us-east-1", endpoint: emulator.endpoint, credentials: { accessKeyId: "AKIDLIFECYCLE", secretAccessKey: "secret" } });
  const lifecycleIds = async (Bucket: string) => ((await s3.send(new GetBucketLifecycleConfigurationCommand({ Bucket }))).Rules ?? []).map((rule) => rule.ID);
  const expiry: LifecycleRule = { ID: "kept", Status: "Enabled", Filter: { Prefix: "a/" }, Expiration: { Days: 1 } };

  beforeAll(async () => {
    emulator = await startS3AndSqs();
    s3 = new S3Client(clientConfig());
  });

  afterAll(async () => {
    s3.destroy();
    await emulator.stop();
  });

  test("every configuration bootstrap puts is taken: the abort rule, embeddings/ and api/ expiries, the 16 upload-retention rules", async () => {
    const config = loadConfig({}, { prefix: "lc", uploadRetentionDays: 30 });
    const desired = desiredState(config, { region: "us-east-1", ingressCidr: "203.0.113.0/24", appInstanceType: "t3.small" });
    const actual: ActualState = { buckets: {}, queues: {}, roles: {}, instanceProfiles: {} };
    const lifecycles = planChanges(desired, actual).filter((change) => change.kind === "set-lifecycle");
    for (const change of lifecycles) await s3.send(new CreateBucketCommand({ Bucket: change.name }));
    const aws = { s3, sqs: new SQSClient(clientConfig()), ec2: new EC2Client(clientConfig()), iam: new IAMClient(clientConfig()), region: "us-east-1" };
    await applyChanges(aws, desired, actual, lifecycles, consoleOutput(() => {}), { pollSeconds: 0 }, knownResources(actual));
    const ruleCounts = await Promise.all(desired.buckets.map(async (bucket) => [bucket, (await lifecycleIds(bucket)).length]));
    expect(Object.fromEntries(ruleCounts)).toEqual({ "lc-in-bucket": 17, "lc-out-bucket": 3, "lc-reports-bucket": 1 });
  });

  const put = (Bucket: string, Rules: LifecycleRule[]) => s3.send(new PutBucketLifecycleConfigurationCommand({ Bucket, LifecycleConfiguration: { Rules } }));
  const zeroDays: LifecycleRule = { ...expiry, ID: "zero", Expiration: { Days: 0 } };

  test("a refused configuration answers 400 with S3's code and stores nothing", async () => {
    await s3.send(new CreateBucketCommand({ Bucket: "refusals" }));
    await put("refusals", [expiry]);
    await expect(put("refusals", [zeroDays])).rejects.toMatchObject({ name: "InvalidArgument", $metadata: { httpStatusCode: 400 } });
    const unsigned = await fetch(`${emulator.endpoint}/refusals?lifecycle`, { method: "PUT", body: configuration(expiring("raw")) });
    expect(unsigned.status).toBe(400);
    expect(await unsigned.text()).toContain("<Code>InvalidRequest</Code>");
    expect(await lifecycleIds("refusals")).toEqual(["kept"]);
  });

  interface GuardedCall {
    /** What the test reads back, before the call and after it. */
    state: (Bucket: string) => Promise<unknown>;
    before?: (Bucket: string) => Promise<unknown>;
    /** The call without the SDK: a body that would change the state. */
    raw: { method: "PUT" | "POST"; subresource: string; body: string };
    sdk: (Bucket: string) => Promise<unknown>;
    unchanged: unknown;
    changed: unknown;
  }
  const absent = (read: () => Promise<unknown>) => read().catch((error: Error) => error.name);
  const GUARDED: Record<string, GuardedCall> = {
    PutBucketLifecycleConfiguration: {
      state: (Bucket) => absent(() => lifecycleIds(Bucket)),
      raw: { method: "PUT", subresource: "lifecycle", body: configuration(expiring("raw")) },
      sdk: (Bucket) => put(Bucket, [expiry]),
      unchanged: "NoSuchLifecycleConfiguration",
      changed: ["kept"],
    },
    PutBucketTagging: {
      state: (Bucket) => absent(async () => (await s3.send(new GetBucketTaggingCommand({ Bucket }))).TagSet),
      raw: { method: "PUT", subresource: "tagging", body: "<Tagging><TagSet><Tag><Key>owner</Key><Value>raw</Value></Tag></TagSet></Tagging>" },
      sdk: (Bucket) => s3.send(new PutBucketTaggingCommand({ Bucket, Tagging: { TagSet: [{ Key: "owner", Value: "sdk" }] } })),
      unchanged: "NoSuchTagSet",
      changed: [{ Key: "owner", Value: "sdk" }],
    },
    PutPublicAccessBlock: {
      state: (Bucket) => absent(async () => (await s3.send(new GetPublicAccessBlockCommand({ Bucket }))).PublicAccessBlockConfiguration?.BlockPublicAcls),
      raw: { method: "PUT", subresource: "publicAccessBlock", body: "<PublicAccessBlockConfiguration><BlockPublicAcls>false</BlockPublicAcls></PublicAccessBlockConfiguration>" },
      sdk: (Bucket) => s3.send(new PutPublicAccessBlockCommand({ Bucket, PublicAccessBlockConfiguration: { BlockPublicAcls: true } })),
      unchanged: "NoSuchPublicAccessBlockConfiguration",
      changed: true,
    },
    PutBucketEncryption: {
      state: (Bucket) =>
        absent(async () => (await s3.send(new GetBucketEncryptionCommand({ Bucket }))).ServerSideEncryptionConfiguration?.Rules?.[0]?.ApplyServerSideEncryptionByDefault?.SSEAlgorithm),
      raw: { method: "PUT", subresource: "encryption", body: "<ServerSideEncryptionConfiguration><Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>aws:kms</SSEAlgorithm></ApplyServerSideEncryptionByDefault></Rule></ServerSideEncryptionConfiguration>" },
      sdk: (Bucket) => s3.send(new PutBucketEncryptionCommand({ Bucket, ServerSideEncryptionConfiguration: { Rules: [{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: "AES256" } }] } })),
      unchanged: "ServerSideEncryptionConfigurationNotFoundError",
      changed: "AES256",
    },
    DeleteObjects: {
      before: (Bucket) => s3.send(new PutObjectCommand({ Bucket, Key: "kept", Body: "x" })),
      state: async (Bucket) => ((await s3.send(new ListObjectsV2Command({ Bucket }))).Contents ?? []).map((object) => object.Key),
      raw: { method: "POST", subresource: "delete", body: "<Delete><Object><Key>kept</Key></Object></Delete>" },
      sdk: (Bucket) => s3.send(new DeleteObjectsCommand({ Bucket, Delete: { Objects: [{ Key: "kept" }], Quiet: true } })),
      unchanged: ["kept"],
      changed: [],
    },
  };

  test("the table of calls over HTTP covers every call that requires the header", () => {
    expect(Object.keys(GUARDED).sort()).toEqual([...INTEGRITY_REQUIRED.values()].sort());
  });

  test.each(Object.entries(GUARDED))("%s: without the header or with a wrong one, 400 and nothing changes; the SDK's call is taken", async (call, guarded) => {
    const Bucket = `guarded-${call.toLowerCase()}`;
    await s3.send(new CreateBucketCommand({ Bucket }));
    await guarded.before?.(Bucket);
    const { method, subresource, body } = guarded.raw;
    for (const [headers, code] of [[{}, "InvalidRequest"], [{ "x-amz-checksum-crc32": "AAAAAA==" }, "BadDigest"]] as const) {
      const answer = await fetch(`${emulator.endpoint}/${Bucket}?${subresource}`, { method, headers, body });
      expect(answer.status).toBe(400);
      expect(await answer.text()).toContain(`<Code>${code}</Code>`);
    }
    expect(await guarded.state(Bucket)).toEqual(guarded.unchanged);
    await guarded.sdk(Bucket);
    expect(await guarded.state(Bucket)).toEqual(guarded.changed);
  });

  describe("while a change propagates, the whole configuration before it reads back", () => {
    /** `change` made while changes lag; it must succeed, or with `refused` be refused (the old rules read back either way). */
    const lagging = async (bucket: string, change: () => Promise<unknown>, refused = false) => {
      await s3.send(new CreateBucketCommand({ Bucket: bucket }));
      await put(bucket, [expiry]);
      emulator.s3.lifecycleLagMs = 60_000;
      try {
        if (refused) await expect(change()).rejects.toMatchObject({ $metadata: { httpStatusCode: 400 } });
        else await change();
      } finally {
        emulator.s3.lifecycleLagMs = 0;
      }
    };

    test("a PUT: the replaced rules, not the new ones beside them", async () => {
      await lagging("replacing", () => put("replacing", [{ ...expiry, ID: "new", Filter: { Prefix: "b/" } }]));
      expect(await lifecycleIds("replacing")).toEqual(["kept"]);
    });

    test("a DELETE: the removed rules", async () => {
      await lagging("removing", () => s3.send(new DeleteBucketLifecycleCommand({ Bucket: "removing" })));
      expect(await lifecycleIds("removing")).toEqual(["kept"]);
    });

    test("a refused PUT changes nothing, so opens no window", async () => {
      await lagging("refused", () => put("refused", [zeroDays]), true);
      await put("refused", [{ ...expiry, ID: "new" }]);
      expect(await lifecycleIds("refused")).toEqual(["new"]);
    });
  });
});

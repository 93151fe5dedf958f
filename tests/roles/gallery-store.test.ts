// Gallery writers on one bucket, files and S3 (fauxqs): conditional saves lose no enrollment, a failed save is not kept.
import { expect, setDefaultTimeout, test } from "bun:test";
import { Gallery } from "../../model/gallery.ts";
import type { Bucket } from "../../roles/cloud/types.ts";
import { GALLERY_KEY } from "../../roles/deployment.ts";
import { GalleryWriter } from "../../roles/gallery-store.ts";
import { onLocalAndS3Buckets } from "../cloud/clouds.ts";

setDefaultTimeout(30_000);

const embedding = (seed: number) => new Uint8Array(new Float32Array([Math.cos(seed), Math.sin(seed), 0, 0]).buffer);

async function stored(bucket: Bucket): Promise<string[]> {
  const bytes = await bucket.get(GALLERY_KEY);
  return bytes ? Gallery.deserialize(bytes).list().map((summary) => summary.subject).sort() : [];
}

/** Leaves an embedding where an app instance would and enrolls it through `writer`. */
async function enroll(bucket: Bucket, writer: GalleryWriter, subject: string, seed: number): Promise<string> {
  const key = `embeddings/${subject}.f32`;
  await bucket.put(key, embedding(seed));
  return writer.enrollFromKey(subject, key);
}

/** The bucket, down from the first gallery save on (every call fails) until `recover`. */
function outageOnSave(bucket: Bucket): { bucket: Bucket; recover(): void } {
  let down = false;
  let recovered = false;
  const fail = () => {
    throw new Error("connect ECONNREFUSED");
  };
  const guarded = <A extends unknown[], R>(call: (...args: A) => Promise<R>) => async (...args: A) => (down ? fail() : call(...args));
  return {
    bucket: {
      name: bucket.name,
      put: async (...args) => {
        if (args[0] === GALLERY_KEY && !recovered) down = true;
        return guarded(bucket.put.bind(bucket))(...args);
      },
      get: guarded(bucket.get.bind(bucket)),
      read: guarded(bucket.read.bind(bucket)),
      version: guarded(bucket.version.bind(bucket)),
      metadata: guarded(bucket.metadata.bind(bucket)),
      putStream: guarded(bucket.putStream.bind(bucket)),
      delete: guarded(bucket.delete.bind(bucket)),
      count: guarded(bucket.count.bind(bucket)),
      list: guarded(bucket.list.bind(bucket)),
      putIf: async (...args) => {
        if (recovered) return bucket.putIf(...args);
        down = true;
        return fail();
      },
    },
    recover: () => {
      down = false;
      recovered = true;
    },
  };
}

function galleryWriters(makeBucket: () => Promise<Bucket>): void {
  test("two writers enrolling at once on one bucket: every enrollment is stored, and each lists them all", async () => {
    const bucket = await makeBucket();
    const [first, second] = await Promise.all([GalleryWriter.open(bucket), GalleryWriter.open(bucket)]);
    const subjects = Array.from({ length: 12 }, (_, index) => `person-${index}`);
    const faceIds = await Promise.all(subjects.map((subject, index) => enroll(bucket, index % 2 === 0 ? first! : second!, subject, index)));
    expect(new Set(faceIds).size).toBe(subjects.length);
    expect(await stored(bucket)).toEqual([...subjects].sort());
    for (const writer of [first!, second!]) {
      await writer.latest();
      expect(writer.list().map((summary) => summary.subject).sort()).toEqual([...subjects].sort());
    }
    await second!.removeSubject("person-0");
    expect(await first!.removeSubject("person-0")).toBe(0);
    expect(await stored(bucket)).toHaveLength(subjects.length - 1);
  });

  test("a save that was stored but answered as a failed condition (the SDK's retry of a lost answer) is not made twice", async () => {
    const bucket = await makeBucket();
    let lost = 1;
    const lostAnswer: Bucket = Object.assign(Object.create(bucket) as Bucket, {
      putIf: async (...args: Parameters<Bucket["putIf"]>) => {
        const version = await bucket.putIf(...args);
        return lost-- > 0 ? undefined : version;
      },
    });
    const writer = await GalleryWriter.open(lostAnswer);
    await enroll(bucket, writer, "Paul", 1);
    expect(Gallery.deserialize((await bucket.get(GALLERY_KEY))!).list()).toEqual([{ subject: "Paul", faces: 1 }]);
  });

  test("a save that fails leaves the listed gallery as stored, and the next save does not carry the failed enrollment", async () => {
    const bucket = await makeBucket();
    const outage = outageOnSave(bucket);
    const writer = await GalleryWriter.open(outage.bucket);
    await bucket.put("embeddings/Paul.f32", embedding(1));
    await expect(writer.enrollFromKey("Paul", "embeddings/Paul.f32")).rejects.toThrow("ECONNREFUSED");
    expect(writer.list()).toEqual([]);
    outage.recover();
    await writer.latest();
    expect(writer.list()).toEqual([]);
    await enroll(outage.bucket, writer, "Emily", 2);
    expect(await stored(bucket)).toEqual(["Emily"]);
    expect(writer.list()).toEqual([{ subject: "Emily", faces: 1 }]);
  });
}

onLocalAndS3Buckets("gallery writers", galleryWriters);

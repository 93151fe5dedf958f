// The sample set in tests/fixtures does what the README's quick start says, with the real model in open mode: every
// photo of people/ enrolls, each query photo is named as its person, the strangers are Unknown, and both people of
// the photo of two are named.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { enrollmentPhotos, queryPhotos, STRANGERS, TWO_FACES } from "../support/fixtures.ts";
import { enrollSampleSet, postImage, startService, upload, type EmbeddedService } from "./support.ts";

// Servers, processes or networks: a test may take seconds on a loaded 2-core CI machine.
setDefaultTimeout(30_000);

interface RecognizedFace {
  box: { x: number };
  match: { subject: string; similarity: number } | null;
  candidates: { subject: string; similarity: number }[];
}

describe("the sample set", () => {
  let service: EmbeddedService;
  const recognize = async (file: string) => {
    const response = await fetch(`${service.url}/v1/recognize?mode=open`, { method: "POST", body: upload("image", await Bun.file(file).bytes(), "x.jpg"), headers: service.auth });
    expect(response.status).toBe(200);
    return ((await response.json()) as { faces: RecognizedFace[] }).faces;
  };

  beforeAll(async () => {
    service = await startService({ answerMode: "open" });
  });
  afterAll(() => service?.stop());

  test("every photo of people/ enrolls under its folder's name, each showing one face", async () => {
    await enrollSampleSet(service);
    const listed = (await (await fetch(`${service.url}/v1/subjects`, { headers: service.auth })).json()) as { subjects: { name: string; faces: number }[] };
    const perPerson = Map.groupBy(enrollmentPhotos(), (photo) => photo.person);
    expect(listed.subjects).toEqual([...perPerson].map(([name, photos]) => ({ name, faces: photos.length })));
  });

  test("each query photo is named as its person, by the classic route and by recognize", async () => {
    for (const query of queryPhotos()) {
      expect(await (await postImage(service.url, query.file)).text()).toBe(`${query.name}:${query.person}`);
      const [face] = await recognize(query.file);
      expect(face!.match?.subject).toBe(query.person);
    }
  });

  test("strangers are Unknown in open mode", async () => {
    for (const stranger of STRANGERS) expect(await (await postImage(service.url, stranger)).text()).toEndWith(":Unknown");
  });

  test("both faces of the photo of two people are named, each where that person stands", async () => {
    const faces = await recognize(TWO_FACES.file);
    expect(faces.toSorted((a, b) => a.box.x - b.box.x).map((face) => face.match?.subject)).toEqual([...TWO_FACES.leftToRight]);
  });
});

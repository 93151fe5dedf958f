// The per-request operating point (`far`): its selection as a table, then through the whole HTTP surface (the real job
// submitter and queues, a fake app answering with the default embedder's threshold in force) with the default
// embedder's calibration, as the service has it.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { FarCalibration } from "../../model/index.ts";
import type { JobMessage } from "../../roles/messages.ts";
import { HttpError } from "../../roles/web/http-error.ts";
import { answeredPoint, requestedPoint, type OperatingPoint } from "../../roles/web/operating-point.ts";
import { AUTH, DEFAULT_OPERATING_POINTS, faceReport, facesResult, multipart, request, startWebHarness, testImages, type WebHarness } from "./support.ts";

const POINTS: FarCalibration = [
  [1e-2, 0.91],
  [1e-3, 0.93],
  [1e-4, 0.94],
];

describe("the operating point answered", () => {
  const cases: [string, FarCalibration, number | undefined, { threshold: number; far?: number }, OperatingPoint | string][] = [
    ["no far: the app's threshold, calibrated", POINTS, undefined, { threshold: 0.93, far: 1e-3 }, { threshold: 0.93, far: 1e-3 }],
    ["no far: the app's threshold, set by hand", POINTS, undefined, { threshold: 0.5 }, { threshold: 0.5, far: null }],
    ["a calibrated far wins over the app's threshold", POINTS, 1e-2, { threshold: 0.93, far: 1e-3 }, { threshold: 0.91, far: 1e-2 }],
    ["a calibrated far wins over a threshold set by hand", POINTS, 1e-4, { threshold: 0.5 }, { threshold: 0.94, far: 1e-4 }],
    ["between two calibrated rates: refused, not interpolated", POINTS, 5e-3, { threshold: 0.93 }, "far 0.005 is not a calibrated operating point; calibrated: 0.01, 0.001, 0.0001"],
    ["past the calibration: refused, not its end", POINTS, 1e-6, { threshold: 0.93 }, "far 0.000001 is not a calibrated operating point; calibrated: 0.01, 0.001, 0.0001"],
    ["a hair off a calibrated rate: refused", POINTS, 1e-3 * (1 + Number.EPSILON), { threshold: 0.93 }, "calibrated: 0.01, 0.001, 0.0001"],
    ["no calibration: every far refused", [], 1e-3, { threshold: 0.3 }, "this embedder has none"],
  ];
  for (const [what, points, far, inForce, expected] of cases) {
    test(what, () => {
      if (typeof expected === "string") {
        const refusal = (() => {
          try {
            return requestedPoint(points, far);
          } catch (error) {
            return error;
          }
        })();
        expect(refusal).toBeInstanceOf(HttpError);
        expect(refusal).toMatchObject({ status: 400, code: "uncalibrated_far", message: expect.stringContaining(expected) });
      } else {
        expect(answeredPoint(requestedPoint(points, far), inForce)).toEqual(expected);
      }
    });
  }
});

describe("far over HTTP, with the default embedder's calibration", () => {
  const at = (far: number) => DEFAULT_OPERATING_POINTS.find(([rate]) => rate === far)![1];
  let harness: WebHarness;
  let jpeg: Uint8Array;
  beforeAll(async () => {
    jpeg = (await testImages()).jpeg;
    // The app answers as the default configuration does: the threshold at 1e-3; Paul sits between it and the one at 1e-2.
    const paul = { subject: "Paul", similarity: Math.round(((at(1e-2) + at(1e-3)) / 2) * 10_000) / 10_000 };
    harness = await startWebHarness({
      answer: (job) => ({ ok: true, jobId: job.jobId, result: facesResult([faceReport([paul])], { threshold: at(1e-3), far: 1e-3 }) }),
    });
  });
  afterAll(() => harness.stop());

  const recognize = (query: string) => harness.app.handle(request(`/v1/recognize${query}`, { method: "POST", body: multipart("image", jpeg, "a.jpg"), headers: AUTH }));
  const answer = async (query: string) => {
    const response = await recognize(query);
    expect(response.status).toBe(200);
    const body = (await response.json()) as { threshold: number; far: number | null; faces: { match: { subject: string } | null }[] };
    return { threshold: body.threshold, far: body.far, match: body.faces[0]!.match?.subject ?? null };
  };

  test("a far changes the threshold answered and the match it decides; without one, the service's default and its rate", async () => {
    expect(await answer("")).toEqual({ threshold: at(1e-3), far: 1e-3, match: null });
    expect(await answer("?far=1e-2")).toEqual({ threshold: at(1e-2), far: 1e-2, match: "Paul" });
    expect(await answer("?far=0.0001")).toEqual({ threshold: at(1e-4), far: 1e-4, match: null });
    // A decimal with an optional exponent, however it is spelled, is the same rate.
    for (const spelling of ["1E-4", ".0001", "0.00010", "10e-5", "1e-4"]) expect([spelling, await answer(`?far=${spelling}`)]).toEqual([spelling, { threshold: at(1e-4), far: 1e-4, match: null }]);
    // The web role applies the threshold: nothing of it travels in the job message.
    const faces = harness.jobsTaken.filter((job: JobMessage) => job.kind === "faces");
    expect(faces.length).toBe(8);
    expect(new Set(faces.map((job) => JSON.stringify(job.faces)))).toEqual(new Set([JSON.stringify({ k: 3, maxFaces: 20, minScore: 0, embedding: false })]));
  });

  test("a far that was not calibrated: 400 uncalibrated_far with the calibrated ones, no job, nothing stored", async () => {
    const [jobs, stored] = [harness.jobsTaken.length, await harness.inBucket.count()];
    const response = await recognize("?far=0.002");
    expect(response.status).toBe(400);
    const calibrated = DEFAULT_OPERATING_POINTS.map(([far]) => String(far)).join(", ");
    expect(await response.json()).toEqual({ error: "uncalibrated_far", message: `far 0.002 is not a calibrated operating point; calibrated: ${calibrated}`, requestId: expect.any(String) });
    expect([harness.jobsTaken.length, await harness.inBucket.count()]).toEqual([jobs, stored]);
  });

  test("a far not written as a plain decimal, or out of (0, 1): 400 invalid_parameter, no job", async () => {
    const jobs = harness.jobsTaken.length;
    for (const far of ["%201e-1", "0x1", "Infinity", "NaN", "-1e-3", "-0", "%2B1e-3", "1e-3%20", "", "0", "1", "2", "1e400", "1e-400", "1_0e-3", "0.00.1", "e-3"]) {
      const response = await recognize(`?far=${far}`);
      expect([far, response.status]).toEqual([far, 400]);
      expect(await response.json()).toMatchObject({
        error: "invalid_parameter",
        message: "invalid query parameter 'far': it takes a number between 0 and 1 exclusive, written as decimal digits with an optional point and exponent (0.001, .001, 1e-3)",
      });
    }
    expect(harness.jobsTaken.length).toBe(jobs);
  });

  test("a query parameter given twice: 400 invalid_parameter naming it, not the last value silently", async () => {
    const jobs = harness.jobsTaken.length;
    for (const query of ["?far=1e-3&far=0.1", "?far=1e-3&k=1&far=1e-3", "?k=1&k=2"]) {
      const response = await recognize(query);
      expect(response.status).toBe(400);
      const name = query.includes("far") ? "far" : "k";
      expect(await response.json()).toMatchObject({ error: "invalid_parameter", message: `query parameter '${name}' is given more than once` });
    }
    expect(harness.jobsTaken.length).toBe(jobs);
  });
});

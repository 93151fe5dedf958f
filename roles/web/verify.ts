/**
 * 1:1 checks on the largest face of each photo: `POST /v1/verify` (two photos) and `POST /v1/subjects/{name}/verify`
 * (a photo against an enrolled subject, scored as recognition scores subjects). The app role embeds, and scores the
 * face against a subject in the gallery it holds; the web role takes the one dot product of two photos.
 */
import { Elysia, t } from "elysia";
import type { FarCalibration } from "../../model/index.ts";
import type { FacesOptions, FacesResult } from "../messages.ts";
import { API_PATH } from "./access.ts";
import { BoxSchema, errorAnswers, EXAMPLE_FACE, EXAMPLE_MATCH, EXAMPLE_OPERATING_POINT, UPLOAD_REFUSALS, withExample } from "./api-schemas.ts";
import { HttpError } from "./http-error.ts";
import type { JobSubmitter } from "./jobs.ts";
import { answeredPoint, FarAnswerSchema, farQuery, requestedPoint } from "./operating-point.ts";
import { requestId } from "./request-id.ts";
import { SubjectName, unknownSubject, type SubjectStore } from "./subjects.ts";
import { streamedBody, type Upload, type UploadReader } from "./upload.ts";

export interface VerifyOptions {
  jobs: JobSubmitter;
  gallery: Pick<SubjectStore, "faceCount">;
  uploads: UploadReader;
  /** The embedder's calibrated false accept rates, for `far`. */
  operatingPoints: FarCalibration;
}

const threshold = t.Number({ description: "the similarity at or above which the faces are the same person: the one calibrated at the far asked for, else the service's (by default the one at a false accept rate of 1e-3 on lfw-devtrain pairs)" });
export const VerifyAnswerSchema = withExample(
  t.Object({
    same: t.Boolean(),
    similarity: t.Number({ description: "cosine similarity of the two largest faces" }),
    threshold,
    far: FarAnswerSchema,
    faces: t.Object({ image1: BoxSchema, image2: BoxSchema }),
  }),
  // Aaron_Sorkin_0001.jpg and _0002.jpg.
  { same: true, similarity: EXAMPLE_MATCH.similarity, ...EXAMPLE_OPERATING_POINT, faces: { image1: EXAMPLE_FACE.box, image2: { x: 70.9, y: 83.4, width: 113.9, height: 113.8 } } },
);
export const SubjectVerifyAnswerSchema = withExample(
  t.Object({
    subject: t.String(),
    same: t.Boolean(),
    similarity: t.Number({ description: "to the subject, scored as recognition scores it (its template: the mean of its faces)" }),
    threshold,
    far: FarAnswerSchema,
    face: BoxSchema,
  }),
  { ...EXAMPLE_MATCH, same: true, ...EXAMPLE_OPERATING_POINT, face: EXAMPLE_FACE.box },
);
const tags = ["verification"];

/** The largest face of a stored photo, or 422 no_face. */
async function largestFace(jobs: JobSubmitter, jobId: string, upload: Upload, options: Pick<FacesOptions, "embedding" | "subject">) {
  const result: FacesResult = await jobs.faces(jobId, upload, { k: 0, maxFaces: 1, minScore: 0, ...options });
  const face = result.faces[0];
  if (!face) throw new HttpError(422, "no_face", `no face found in ${upload.field}`);
  return { box: face.box, result };
}

/** The largest face of a stored photo and its embedding. */
async function embeddedFace(jobs: JobSubmitter, jobId: string, upload: Upload) {
  const { box, result } = await largestFace(jobs, jobId, upload, { embedding: true });
  if (!result.embedding) throw new Error(`the faces result of job ${jobId} has no embedding`);
  const bytes = Buffer.from(result.embedding, "base64");
  return { box, embedding: new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)), inForce: result };
}

function cosine(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new Error(`embeddings of ${a.length} and ${b.length} dimensions`);
  let dot = 0;
  for (let i = 0; i < a.length; i++) dot += a[i]! * b[i]!;
  return dot;
}

const round = (x: number) => Math.round(x * 10_000) / 10_000;

export function verifyApi(options: VerifyOptions) {
  const { jobs, gallery, operatingPoints } = options;
  const query = t.Object(farQuery(operatingPoints));
  return new Elysia({ name: "verify-api" })
    .use(requestId)
    .post(
      `${API_PATH}/verify`,
      async ({ query, request, requestId }) => {
        const requested = requestedPoint(operatingPoints, query.far);
        const { uploads } = await options.uploads.read(request, requestId, { image1: 1, image2: 1 });
        const stored = (field: string) => uploads.find((upload) => upload.field === field)!;
        const [first, second] = await Promise.all([
          embeddedFace(jobs, `${requestId}-1`, stored("image1")),
          embeddedFace(jobs, `${requestId}-2`, stored("image2")),
        ]);
        const similarity = round(cosine(first.embedding, second.embedding));
        const point = answeredPoint(requested, first.inForce);
        return { same: similarity >= point.threshold, similarity, ...point, faces: { image1: first.box, image2: second.box } };
      },
      {
        query,
        ...streamedBody(t.Object({ image1: t.File(), image2: t.File() }), { summary: "Are the largest faces of two photos the same person?", tags }),
        response: { 200: VerifyAnswerSchema, ...errorAnswers([...UPLOAD_REFUSALS, 422], { 422: { error: "no_face", message: "no face found in image2" } }) },
      },
    )
    .post(
      `${API_PATH}/subjects/:name/verify`,
      async ({ params, query, request, requestId }) => {
        const requested = requestedPoint(operatingPoints, query.far);
        if (gallery.faceCount(params.name) === 0) throw unknownSubject(params.name);
        const face = await largestFace(jobs, requestId, await options.uploads.readOne(request, requestId, "image"), { embedding: false, subject: params.name });
        // Absent: the subject lost its last face between the check above and the job.
        const similarity = face.result.subjectSimilarity;
        if (similarity === undefined) throw unknownSubject(params.name);
        const rounded = round(similarity);
        const point = answeredPoint(requested, face.result);
        return { subject: params.name, same: rounded >= point.threshold, similarity: rounded, ...point, face: face.box };
      },
      {
        params: t.Object({ name: SubjectName }),
        query,
        ...streamedBody(t.Object({ image: t.File() }), { summary: "Is the largest face of a photo this subject?", tags }),
        response: { 200: SubjectVerifyAnswerSchema, ...errorAnswers([...UPLOAD_REFUSALS, 404, 422]) },
      },
    );
}

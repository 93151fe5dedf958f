/**
 * 1:1 checks on the largest face of each photo: `POST /v1/verify` (two photos) and `POST /v1/subjects/{name}/verify`
 * (a photo against an enrolled subject, scored as recognition scores subjects). The app role embeds; the web role only takes one dot
 * product, or asks the gallery it holds.
 */
import { Elysia, t } from "elysia";
import type { FacesResult } from "../messages.ts";
import { apiGuard, API_PATH } from "./api-guard.ts";
import type { RecognitionKeys } from "./bearer.ts";
import { BoxSchema, errorAnswers, EXAMPLE_FACE, EXAMPLE_MATCH, EXAMPLE_THRESHOLD, UPLOAD_REFUSALS, withExample } from "./api-schemas.ts";
import { HttpError } from "./http-error.ts";
import type { JobSubmitter } from "./jobs.ts";
import { requestId } from "./request-id.ts";
import { SubjectName, unknownSubject, type SubjectStore } from "./subjects.ts";
import { streamedBody, type Upload, type UploadReader } from "./upload.ts";

export interface VerifyOptions {
  jobs: JobSubmitter;
  gallery: Pick<SubjectStore, "subjectSimilarity" | "faceCount">;
  uploads: UploadReader;
  token: () => string;
  /** The recognition keys, taken where key-scope.ts allows; without, only the admin token is. */
  keys?: RecognitionKeys;
}

const threshold = t.Number({ description: "the similarity at or above which the faces are the same person (the open-set threshold, chosen for a false-accept rate of 1e-3 on lfw-devtrain pairs)" });
export const VerifyAnswerSchema = withExample(
  t.Object({
    same: t.Boolean(),
    similarity: t.Number({ description: "cosine similarity of the two largest faces" }),
    threshold,
    faces: t.Object({ image1: BoxSchema, image2: BoxSchema }),
  }),
  // Aaron_Sorkin_0001.jpg and _0002.jpg.
  { same: true, similarity: EXAMPLE_MATCH.similarity, threshold: EXAMPLE_THRESHOLD, faces: { image1: EXAMPLE_FACE.box, image2: { x: 70.9, y: 83.4, width: 113.9, height: 113.8 } } },
);
export const SubjectVerifyAnswerSchema = withExample(
  t.Object({
    subject: t.String(),
    same: t.Boolean(),
    similarity: t.Number({ description: "to the subject, scored as recognition scores it (its template: the mean of its faces)" }),
    threshold,
    face: BoxSchema,
  }),
  { ...EXAMPLE_MATCH, same: true, threshold: EXAMPLE_THRESHOLD, face: EXAMPLE_FACE.box },
);
const tags = ["verification"];

/** The largest face of a stored photo and its embedding. */
async function largestFace(jobs: JobSubmitter, jobId: string, upload: Upload) {
  const field = upload.field;
  const result: FacesResult = await jobs.faces(jobId, upload, { k: 0, maxFaces: 1, minScore: 0, embedding: true });
  const face = result.faces[0];
  if (!face || !result.embedding) throw new HttpError(422, "no_face", `no face found in ${field}`);
  const bytes = Buffer.from(result.embedding, "base64");
  return { box: face.box, embedding: new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)), threshold: result.threshold };
}

function cosine(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new Error(`embeddings of ${a.length} and ${b.length} dimensions`);
  let dot = 0;
  for (let i = 0; i < a.length; i++) dot += a[i]! * b[i]!;
  return dot;
}

const round = (x: number) => Math.round(x * 10_000) / 10_000;

export function verifyApi(options: VerifyOptions) {
  const { jobs, gallery } = options;
  return new Elysia({ name: "verify-api" })
    .use(requestId)
    .use(apiGuard(options.token, options.keys))
    .post(
      `${API_PATH}/verify`,
      async ({ request, requestId }) => {
        const { uploads } = await options.uploads.read(request, requestId, { image1: 1, image2: 1 });
        const stored = (field: string) => uploads.find((upload) => upload.field === field)!;
        const [first, second] = await Promise.all([
          largestFace(jobs, `${requestId}-1`, stored("image1")),
          largestFace(jobs, `${requestId}-2`, stored("image2")),
        ]);
        const similarity = round(cosine(first.embedding, second.embedding));
        return { same: similarity >= first.threshold, similarity, threshold: first.threshold, faces: { image1: first.box, image2: second.box } };
      },
      {
        ...streamedBody(t.Object({ image1: t.File(), image2: t.File() }), { summary: "Are the largest faces of two photos the same person?", tags }),
        response: { 200: VerifyAnswerSchema, ...errorAnswers([...UPLOAD_REFUSALS, 422], { 422: { error: "no_face", message: "no face found in image2" } }) },
      },
    )
    .post(
      `${API_PATH}/subjects/:name/verify`,
      async ({ params, request, requestId }) => {
        if (gallery.faceCount(params.name) === 0) throw unknownSubject(params.name);
        const face = await largestFace(jobs, requestId, await options.uploads.readOne(request, requestId, "image"));
        const similarity = gallery.subjectSimilarity(params.name, face.embedding);
        if (similarity === undefined) throw unknownSubject(params.name);
        const rounded = round(similarity);
        return { subject: params.name, same: rounded >= face.threshold, similarity: rounded, threshold: face.threshold, face: face.box };
      },
      {
        params: t.Object({ name: SubjectName }),
        ...streamedBody(t.Object({ image: t.File() }), { summary: "Is the largest face of a photo this subject?", tags }),
        response: { 200: SubjectVerifyAnswerSchema, ...errorAnswers([...UPLOAD_REFUSALS, 404, 422]) },
      },
    );
}

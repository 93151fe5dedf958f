/** The subjects API (`/v1/subjects`): enroll, list, rename and remove people and their faces, behind the bearer token (`access.ts`). */
import { Elysia, t } from "elysia";
import type { GalleryWriter } from "../gallery-store.ts";
import { EnrollFaceSchema, type EnrollFace } from "../messages.ts";
import { API_PATH } from "./access.ts";
import { displayableName, errorAnswers, EXAMPLE_CANDIDATES, EXAMPLE_MATCH, UPLOAD_REFUSALS, withExample } from "./api-schemas.ts";
import { refusalOf } from "./errors.ts";
import { HttpError } from "./http-error.ts";
import { JSON_ONLY, UNSUPPORTED_MEDIA_TYPE } from "./json-body.ts";
import type { JobSubmitter } from "./jobs.ts";
import { queryInteger } from "./query-numbers.ts";
import { requestId } from "./request-id.ts";
import { streamedBody, type RefusedFile, type Upload, type UploadReader } from "./upload.ts";

/** The gallery as the subjects API uses it. */
export type SubjectStore = Pick<
  GalleryWriter,
  "latest" | "list" | "subjectCount" | "faceCount" | "facesOf" | "enrollFromKey" | "removeSubject" | "removeFace" | "renameSubject" | "compact" | "importFaces" | "exportFaces" | "dimensions"
>;

export interface SubjectsOptions {
  jobs: JobSubmitter;
  gallery: SubjectStore;
  uploads: UploadReader;
}

/** Any printable name without slashes that is not a dot segment (it travels in URL paths and object keys). */
/** Letters of any script (LFW's folders: underscores, accents), no slash or backslash, not `.` or `..`. */
export const SubjectName = t.String({ minLength: 1, maxLength: 100, pattern: displayableName("/\\\\", "(?!\\.\\.?$)") });
const Name = t.Object({ name: SubjectName });
/** A face's id as the gallery makes them (`model/gallery.ts`): `f` and a counter. */
const FaceId = t.String({ pattern: "^f[0-9]{1,15}$", description: "as the enrollment answered it, `f7` say" });

export const DEFAULT_PAGE_SIZE = 100;
/** Image parts one enrollment request may carry. */
export const MAX_ENROLL_IMAGES = 20;
export const MAX_PAGE_SIZE = 1000;

/** The docs' subjects: the gallery the recognize examples were matched against. */
const EXAMPLE_SUBJECT = EXAMPLE_MATCH.subject;
const EXAMPLE_FACE_ID = "f7";

export const SubjectListSchema = withExample(
  t.Object({
    subjects: t.Array(t.Object({ name: t.String(), faces: t.Integer() })),
    page: t.Integer(),
    size: t.Integer(),
    total: t.Integer({ description: "subjects in the gallery" }),
  }),
  {
    subjects: EXAMPLE_CANDIDATES.map(({ subject }) => ({ name: subject, faces: subject === EXAMPLE_SUBJECT ? 2 : 1 })),
    page: 1,
    size: DEFAULT_PAGE_SIZE,
    total: EXAMPLE_CANDIDATES.length,
  },
);
export const SubjectFacesSchema = withExample(
  t.Object({
    name: t.String(),
    faces: t.Array(t.Object({ faceId: t.String(), createdAt: t.String({ description: "ISO 8601" }), source: t.String({ description: "the uploaded file's name" }) })),
  }),
  {
    name: EXAMPLE_SUBJECT,
    faces: [
      { faceId: "f6", createdAt: "2026-12-01T09:12:04.518Z", source: `${EXAMPLE_SUBJECT}_0001.jpg` },
      { faceId: EXAMPLE_FACE_ID, createdAt: "2026-12-01T09:12:05.027Z", source: `${EXAMPLE_SUBJECT}_0002.jpg` },
    ],
  },
);
export const EnrolledSchema = withExample(t.Object({ subject: t.String(), faceId: t.String(), faces: t.Integer({ description: "the subject's faces now" }) }), {
  subject: EXAMPLE_SUBJECT,
  faceId: EXAMPLE_FACE_ID,
  faces: 2,
});
const PartResultSchema = t.Union([
  t.Object({ file: t.String(), status: t.Literal(201), faceId: t.String() }),
  t.Object({ file: t.String(), status: t.Integer({ minimum: 400 }), error: t.String(), message: t.String() }),
]);
type PartResult = { file: string; status: 201; faceId: string } | { file: string; status: number; error: string; message: string };
export const EnrolledPartsSchema = withExample(
  t.Object({
    subject: t.String(),
    faces: t.Integer(),
    results: t.Array(PartResultSchema, { description: "one per image part, in order" }),
  }),
  {
    subject: EXAMPLE_SUBJECT,
    faces: 2,
    results: [
      { file: `${EXAMPLE_SUBJECT}_0001.jpg`, status: 201, faceId: "f6" },
      { file: "group.jpg", status: 422, error: "multiple_faces", message: "the photo has 3 faces; send a photo of one person, or ask for ?face=largest" },
      { file: "scan.jpg", status: 413, error: "file_too_large", message: "a file in 'image' has more than 10485760 bytes, the limit" },
      { file: `${EXAMPLE_SUBJECT}_0002.jpg`, status: 201, faceId: EXAMPLE_FACE_ID },
    ],
  },
);
const RenamedSchema = withExample(t.Object({ name: t.String(), faces: t.Integer() }), { name: EXAMPLE_SUBJECT, faces: 2 });
const RemovedSubjectSchema = withExample(t.Object({ subject: t.String(), removedFaces: t.Integer() }), { subject: EXAMPLE_SUBJECT, removedFaces: 2 });
const RemovedFaceSchema = withExample(t.Object({ subject: t.String(), faceId: t.String(), faces: t.Integer() }), { subject: EXAMPLE_SUBJECT, faceId: EXAMPLE_FACE_ID, faces: 1 });
export const EnrollQuerySchema = t.Object({
  face: t.Optional(t.Union(EnrollFaceSchema.anyOf, { description: "single (default): a photo with several faces is refused; largest: its largest face is enrolled" })),
});
const tags = ["subjects"];

export function subjectsApi(options: SubjectsOptions) {
  const { jobs, gallery, uploads } = options;

  /** One image part: its face enrolled, or the client's reason it was not (anything else is a fault, thrown). */
  async function enrollPart(requestId: string, subject: string, part: Upload | RefusedFile, face: EnrollFace): Promise<PartResult> {
    const file = part.fileName;
    try {
      if ("refusal" in part) throw part.refusal;
      const reply = await jobs.submit(requestId, "embed", part, { enrollFace: face });
      const faceId = await gallery.enrollFromKey(subject, reply.embeddingKey, { createdAt: new Date().toISOString(), source: file });
      return { file, status: 201, faceId };
    } catch (error) {
      const refusal = refusalOf(error);
      if (!refusal) throw error;
      return { file, status: refusal.status, error: refusal.code, message: refusal.message };
    }
  }

  return new Elysia({ name: "subjects-api" })
    .use(requestId)
    .get(
      `${API_PATH}/subjects`,
      async ({ query }) => {
        const page = query.page ?? 1;
        const size = query.size ?? DEFAULT_PAGE_SIZE;
        await gallery.latest();
        const subjects = gallery.list((page - 1) * size, size).map(({ subject, faces }) => ({ name: subject, faces }));
        return { subjects, page, size, total: gallery.subjectCount };
      },
      {
        query: t.Object({
          ...queryInteger("page", { minimum: 1, maximum: 1_000_000, description: "from 1" }),
          ...queryInteger("size", { minimum: 1, maximum: MAX_PAGE_SIZE, description: `subjects per page (default ${DEFAULT_PAGE_SIZE})` }),
        }),
        response: { 200: SubjectListSchema, ...errorAnswers([400, 401, 403]) },
        detail: { summary: "List subjects, by name", tags },
      },
    )
    .get(
      `${API_PATH}/subjects/:name`,
      async ({ params }) => {
        await gallery.latest();
        const faces = gallery.facesOf(params.name);
        if (faces.length === 0) throw unknownSubject(params.name);
        return { name: params.name, faces };
      },
      { params: Name, response: { 200: SubjectFacesSchema, ...errorAnswers([400, 401, 403, 404]) }, detail: { summary: "A subject's faces", tags } },
    )
    .post(
      `${API_PATH}/subjects/:name/faces`,
      async ({ params, request, query, requestId, set }) => {
        const files = await uploads.readEach(request, requestId, "image", MAX_ENROLL_IMAGES);
        const face = query.face ?? "single";
        if (files.length === 1) {
          const result = await enrollPart(requestId, params.name, files[0]!, face);
          if ("error" in result) throw new HttpError(result.status, result.error, result.message);
          set.status = 201;
          return { subject: params.name, faceId: result.faceId, faces: gallery.faceCount(params.name) };
        }
        const results = [];
        // One at a time, each under its own job id: the parts share the request's id as a prefix.
        for (const [index, file] of files.entries()) results.push(await enrollPart(`${requestId}-${index + 1}`, params.name, file, face));
        return { subject: params.name, faces: gallery.faceCount(params.name), results };
      },
      {
        params: Name,
        query: EnrollQuerySchema,
        ...streamedBody(
          t.Object({
            image: t.Files({
              maxItems: MAX_ENROLL_IMAGES,
              description:
                "one photo (answered 201 or a 4xx), or several (answered 200, part by part). The file limit is per photo: a photo past it is answered 413 file_too_large on its own; a body past the body bound is refused whole, 413 body_too_large",
            }),
          }),
          { summary: "Enroll a subject's face from a photo; unusable photos are refused with a reason and nothing is stored", tags },
        ),
        response: { 200: EnrolledPartsSchema, 201: EnrolledSchema, ...errorAnswers([...UPLOAD_REFUSALS, 403, 409, 422], {
          409: { error: "embedding_mismatch", message: "the gallery holds 128-d embeddings but the model gives 512-d ones: re-enroll after changing the embedder" },
          413: { error: "body_too_large", message: "the request body has more than 52428800 bytes, the limit for a whole body" },
          422: { error: "face_too_small", message: "the face is 14 pixels across; at least 20 are needed" },
        }) },
      },
    )
    .patch(
      `${API_PATH}/subjects/:name`,
      async ({ params, body, query }) => {
        const outcome = await gallery.renameSubject(params.name, body.name, query.merge === "true");
        if (outcome === "unknown_subject") throw unknownSubject(params.name);
        if (outcome === "subject_exists") throw new HttpError(409, "subject_exists", `a subject named '${body.name}' exists; add ?merge=true to merge into it`);
        return { name: body.name, faces: gallery.faceCount(body.name) };
      },
      {
        params: Name,
        parse: JSON_ONLY,
        body: Name,
        query: t.Object({ merge: t.Optional(t.Union([t.Literal("true"), t.Literal("false")], { description: "merge into an existing subject" })) }),
        response: { 200: RenamedSchema, ...errorAnswers([400, 401, 403, 404, 409, 415], { 415: UNSUPPORTED_MEDIA_TYPE }) },
        detail: { summary: "Rename a subject (or merge it into another with ?merge=true)", tags },
      },
    )
    .delete(
      `${API_PATH}/subjects/:name`,
      async ({ params, query }) => {
        const removed = await gallery.removeSubject(params.name);
        if (removed === 0) throw unknownSubject(params.name);
        if (query.erase === "now") await gallery.compact();
        return { subject: params.name, removedFaces: removed };
      },
      { params: Name, query: EraseQuerySchema, response: { 200: RemovedSubjectSchema, ...errorAnswers([400, 401, 403, 404]) }, detail: { summary: "Remove a subject", tags } },
    )
    .delete(
      `${API_PATH}/subjects/:name/faces/:faceId`,
      async ({ params, query }) => {
        if (!(await gallery.removeFace(params.name, params.faceId))) {
          throw new HttpError(404, "unknown_face", `subject '${params.name}' has no face '${params.faceId}'`);
        }
        if (query.erase === "now") await gallery.compact();
        return { subject: params.name, faceId: params.faceId, faces: gallery.faceCount(params.name) };
      },
      {
        params: t.Object({ name: SubjectName, faceId: FaceId }),
        query: EraseQuerySchema,
        response: { 200: RemovedFaceSchema, ...errorAnswers([400, 401, 403, 404], { 404: { error: "unknown_face", message: "subject 'Aaron_Sorkin' has no face 'f9'" } }) },
        detail: { summary: "Remove one face of a subject", tags },
      },
    );
}

/** A removal is gone from every answer at once; its embedding leaves storage within the erasure bound, or now. */
const EraseQuerySchema = t.Object({
  erase: t.Optional(t.Literal("now", { description: "rewrite the stored segments holding the removed faces before answering, rather than within the erasure bound (default 24 h)" })),
});

export const unknownSubject = (name: string) => new HttpError(404, "unknown_subject", `no subject named '${name}'`);

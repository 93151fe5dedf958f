/** The subjects API (`/v1/subjects`): enroll, list and remove people, always behind the bearer token. */
import { Elysia, t } from "elysia";
import type { SubjectSummary } from "../../model/gallery.ts";
import { apiGuard, API_PATH } from "./api-guard.ts";
import { HttpError } from "./http-error.ts";
import type { JobSubmitter } from "./jobs.ts";
import { requestId } from "./request-id.ts";
import { readUpload, type ImageInspector } from "./upload.ts";

/** The gallery as the subjects API uses it (`GalleryWriter`). */
export interface SubjectStore {
  list(): SubjectSummary[];
  faceCount(subject: string): number;
  /** Enrolls the embedding an app instance left at `key`; returns the new face's id. */
  enrollFromKey(subject: string, key: string): Promise<string>;
  /** Returns how many faces were removed. */
  removeSubject(subject: string): Promise<number>;
}

export interface SubjectsOptions {
  jobs: JobSubmitter;
  gallery: SubjectStore;
  inspect: ImageInspector;
  maxUploadBytes: number;
  token: () => string;
}

/** Any printable name without slashes (it travels in URLs and object keys). */
const SubjectName = t.String({ minLength: 1, maxLength: 100, pattern: "^[^/\\\\\\u0000-\\u001f]+$" });

export function subjectsApi(options: SubjectsOptions) {
  const { jobs, gallery, inspect, maxUploadBytes } = options;
  return new Elysia({ name: "subjects-api" })
    .use(requestId)
    .use(apiGuard(options.token))
    .get(`${API_PATH}/subjects`, () => ({ subjects: gallery.list() }))
    .post(
      `${API_PATH}/subjects/:name/faces`,
      async ({ params, body, requestId, set }) => {
        const upload = await readUpload(body.image, "image", maxUploadBytes, inspect);
        const reply = await jobs.submit(requestId, "embed", upload);
        const faceId = await gallery.enrollFromKey(params.name, reply.embeddingKey);
        set.status = 201;
        return { subject: params.name, faceId, faces: gallery.faceCount(params.name) };
      },
      { params: t.Object({ name: SubjectName }), body: t.Object({ image: t.File() }) },
    )
    .delete(
      `${API_PATH}/subjects/:name`,
      async ({ params }) => {
        const removed = await gallery.removeSubject(params.name);
        if (removed === 0) throw new HttpError(404, "unknown_subject", `no subject named '${params.name}'`);
        return { subject: params.name, removedFaces: removed };
      },
      { params: t.Object({ name: SubjectName }) },
    );
}

/** The subjects API (`/v1/subjects`): enroll, list and remove people, always behind the bearer token. */
import { Elysia, t } from "elysia";
import type { SubjectSummary } from "../../model/gallery.ts";
import { bearerGuard } from "./bearer.ts";
import { HttpError } from "./http-error.ts";
import type { JobSubmitter } from "./jobs.ts";
import { requestId } from "./request-id.ts";
import type { UploadReader } from "./upload.ts";

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
  uploads: UploadReader;
  token: () => string;
}

/** The path under which every admin route lives, all of it behind the bearer token. */
export const ADMIN_PATH = "/v1";

/** Any printable name without slashes (it travels in URLs and object keys). */
const SubjectName = t.String({ minLength: 1, maxLength: 100, pattern: "^[^/\\\\\\u0000-\\u001f]+$" });

export function subjectsApi(options: SubjectsOptions) {
  const { jobs, gallery, uploads } = options;
  return new Elysia({ name: "subjects-api" })
    .use(requestId)
    .use(bearerGuard((_method, pathname) => pathname === ADMIN_PATH || pathname.startsWith(`${ADMIN_PATH}/`), options.token))
    .get(`${ADMIN_PATH}/subjects`, () => ({ subjects: gallery.list() }))
    .post(
      `${ADMIN_PATH}/subjects/:name/faces`,
      async ({ params, request, requestId, set }) => {
        const upload = await uploads.readOne(request, requestId, "image");
        const reply = await jobs.submit(requestId, "embed", upload);
        const faceId = await gallery.enrollFromKey(params.name, reply.embeddingKey);
        set.status = 201;
        return { subject: params.name, faceId, faces: gallery.faceCount(params.name) };
      },
      { params: t.Object({ name: SubjectName }), parse: "none" },
    )
    .delete(
      `${ADMIN_PATH}/subjects/:name`,
      async ({ params }) => {
        const removed = await gallery.removeSubject(params.name);
        if (removed === 0) throw new HttpError(404, "unknown_subject", `no subject named '${params.name}'`);
        return { subject: params.name, removedFaces: removed };
      },
      { params: t.Object({ name: SubjectName }) },
    );
}

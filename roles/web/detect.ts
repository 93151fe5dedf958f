/** `POST /v1/detect`: every face with its box, landmarks and quality; nobody is matched. */
import { Elysia, t } from "elysia";
import { API_PATH } from "./access.ts";
import {
  errorAnswers,
  EXAMPLE_FACE,
  EXAMPLE_IMAGE,
  EXAMPLE_PLACED_FACE,
  EXAMPLE_REQUEST_ID,
  PlacedFaceSchema,
  placedFace,
  QualitySchema,
  UPLOAD_REFUSALS,
  withExample,
} from "./api-schemas.ts";
import { DEFAULT_MAX_FACES, faceQuery, type FaceRouteOptions } from "./recognize.ts";
import { requestId } from "./request-id.ts";
import { streamedBody } from "./upload.ts";

export const DetectAnswerSchema = withExample(
  t.Object({
    requestId: t.String(),
    width: t.Integer(),
    height: t.Integer(),
    faces: t.Array(t.Composite([PlacedFaceSchema, t.Object({ quality: QualitySchema })]), { description: "every face, largest first" }),
  }),
  { requestId: EXAMPLE_REQUEST_ID, ...EXAMPLE_IMAGE, faces: [{ ...EXAMPLE_PLACED_FACE, quality: EXAMPLE_FACE.quality }] },
);

export function detectApi(options: FaceRouteOptions) {
  const { jobs, uploads } = options;
  return new Elysia({ name: "detect-api" })
    .use(requestId)
    .post(
      `${API_PATH}/detect`,
      async ({ request, query, requestId }) => {
        const upload = await uploads.readOne(request, requestId, "image");
        const result = await jobs.faces(requestId, upload, { k: 0, maxFaces: query.maxFaces ?? DEFAULT_MAX_FACES, minScore: query.minScore ?? 0, embedding: false });
        return {
          requestId,
          width: result.width,
          height: result.height,
          faces: result.faces.map((face) => ({ ...placedFace(face, result.width, result.height), quality: face.quality })),
        };
      },
      {
        ...streamedBody(t.Object({ image: t.File({ description: "a JPEG, PNG or WebP photo" }) }), { summary: "Find every face in a photo, with its quality", tags: ["recognition"] }),
        query: t.Object(faceQuery),
        response: { 200: DetectAnswerSchema, ...errorAnswers([...UPLOAD_REFUSALS]) },
      },
    );
}

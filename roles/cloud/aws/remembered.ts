/** `load`'s answer, asked once and shared by every caller; a failure is not kept, so the next call asks again. */
export function rememberedUntilFailure<T>(load: () => Promise<T>): () => Promise<T> {
  let answer: Promise<T> | undefined;
  return () =>
    (answer ??= load().catch((error: unknown) => {
      answer = undefined;
      throw error;
    }));
}

/** fauxqs (S3 + SQS) in this process behind the loopback front, as the AWS SDK's endpoint for cloud contract tests. */
import { startFauxqs } from "fauxqs";
import { startFauxqsFront } from "../infra/fauxqs-front.ts";

export interface FauxqsEndpoint {
  address: string;
  stop(): Promise<void>;
}

export async function startFauxqsEndpoint(): Promise<FauxqsEndpoint> {
  const fauxqs = await startFauxqs({ port: 0, logger: false });
  const front = startFauxqsFront(fauxqs.address);
  return {
    address: front.address,
    async stop() {
      await front.stop();
      await fauxqs.stop();
    },
  };
}

export const TEST_CLIENT_SETTINGS = {
  region: "us-east-1",
  credentials: { accessKeyId: "test", secretAccessKey: "test" },
} as const;

import { type SandboxedJob, UnrecoverableError } from 'bullmq';
import { CamerasError } from '../errors.js';
import { type BatchJob, type BatchRecord, JobRunner } from './batch.js';

/** One runner per child process: models stay loaded from job to job. */
const runner = new JobRunner(process.env.CAMERAS_JOB_THREADS ? Number(process.env.CAMERAS_JOB_THREADS) : undefined);

/** BullMQ's sandboxed processor: runs one batch job in this child process. */
export default async function processJob(job: SandboxedJob<BatchJob, BatchRecord>): Promise<BatchRecord> {
  let record: BatchRecord;
  try {
    ({ record } = await runner.run(job.data));
  } catch (error) {
    // Bad input (a corrupt image, an unknown class) fails the same way every time: straight to the failed list.
    if (error instanceof CamerasError) throw new UnrecoverableError(error.message);
    throw error;
  }
  return record;
}

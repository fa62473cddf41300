/**
 * jest globalTeardown: stops the servers started by global-setup.ts (same process, so the running
 * s3rver instance is reachable through globalThis) and removes their temp directory, then the run's
 * temporary folder (temp-root.ts).
 */
import { harnessState, stopAll } from './global-setup';
import { removeTempRoot } from './temp-root';

export default async function globalTeardown(): Promise<void> {
  const state = harnessState();
  try {
    if (state) await stopAll(state);
  } finally {
    removeTempRoot();
  }
}

/**
 * jest globalTeardown: stops the servers started by global-setup.ts (same process, so the running
 * s3rver instance is reachable through globalThis) and removes their temp directory.
 */
import { harnessState, stopAll } from './global-setup';

export default async function globalTeardown(): Promise<void> {
  const state = harnessState();
  if (!state) return;
  await stopAll(state);
}

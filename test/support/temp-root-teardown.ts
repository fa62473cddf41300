/**
 * jest globalTeardown of the projects without servers (unit, template): removes the run's
 * temporary folder (temp-root.ts), unless the test servers still run — global-teardown.ts removes
 * it then, once they are stopped.
 */
import { harnessState } from './global-setup';
import { removeTempRoot } from './temp-root';

export default function globalTeardown(): void {
  if (!harnessState()) removeTempRoot();
}

/**
 * Three projects (`npx jest --selectProjects unit|template|e2e`):
 * - unit: test/unit/ but the CDK app's tests, mirroring the source tree; no server, no build,
 *   seconds (`npm run test:unit`).
 * - template: test/unit/lib/, the CDK app's tests: each synthesizes the stack (or its workflows)
 *   and checks the template; a minute or more on two cores (`npm run test:template`).
 * - e2e: test/integration/ (modules against real PostgreSQL servers, the S3 server, the built code)
 *   and test/e2e/ (the CLI's workflows end to end); the global setup starts the servers.
 * `npm test` runs all three.
 */
const common = {
  testEnvironment: 'node',
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', {}] },
};
/** The run's temporary folder (test/support/temp-root.ts), removed at its end. */
const tempRoot = {
  globalSetup: '<rootDir>/test/support/temp-root.ts',
  globalTeardown: '<rootDir>/test/support/temp-root-teardown.ts',
};

/** @type {import('jest').Config} */
module.exports = {
  testTimeout: 120000,
  maxWorkers: 2,
  projects: [
    {
      ...common,
      displayName: 'unit',
      roots: ['<rootDir>/test/unit'],
      testPathIgnorePatterns: ['/node_modules/', '<rootDir>/test/unit/lib/'],
      ...tempRoot,
    },
    { ...common, displayName: 'template', roots: ['<rootDir>/test/unit/lib'], ...tempRoot },
    {
      ...common,
      displayName: 'e2e',
      roots: ['<rootDir>/test/integration', '<rootDir>/test/e2e'],
      globalSetup: '<rootDir>/test/support/global-setup.ts',
      globalTeardown: '<rootDir>/test/support/global-teardown.ts',
    },
  ],
};

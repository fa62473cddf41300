// The server is started by code shared with the benchmark (scripts/bench.ts), which the build compiles.
export * from '../../scripts/support/s3-server';

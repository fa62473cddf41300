// The servers are started by code shared with the benchmark (scripts/bench.ts), which the build compiles.
export * from '../../scripts/support/postgres-server';

#!/usr/bin/env node
/**
 * The CDK app (`npx cdk synth`/`deploy`, see cdk.json). The configuration file is the context
 * value `config` (`cdk deploy -c config=my-pgferry.json`), else the PGFERRY_CONFIG environment
 * variable, else the example (config/pgferry.example.json). cdk-nag's AWS Solutions checks run
 * on every synthesis: an unacknowledged finding stops it.
 */
import * as path from 'node:path';
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { EXAMPLE_CONFIG_PATH, loadConfig, type PgferryConfig } from './config';
import { PgferryStack } from './pgferry-stack';

const app = new App();
const configFile = path.resolve(
  (app.node.tryGetContext('config') as string | undefined) ??
    process.env.PGFERRY_CONFIG ??
    EXAMPLE_CONFIG_PATH,
);
let config: PgferryConfig;
try {
  config = loadConfig(configFile);
} catch (err) {
  // The message names every field in error; a stack trace would only hide it.
  process.stderr.write(`${(err as Error).message}\n`);
  process.exit(1);
}
new PgferryStack(app, config.stackName, {
  config,
  env: {
    account: config.account ?? process.env.CDK_DEFAULT_ACCOUNT,
    region: config.region ?? process.env.CDK_DEFAULT_REGION,
  },
  description: 'pgferry: PostgreSQL backups run by Step Functions workflows',
});
Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
app.synth();

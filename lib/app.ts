#!/usr/bin/env node
/** The CDK app (`npx cdk synth`/`deploy`, see cdk.json). */
import { App } from 'aws-cdk-lib';
import { PgferryStack } from './pgferry-stack';

const app = new App();
new PgferryStack(app, app.node.tryGetContext('stackName') ?? 'Pgferry', {
  env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
});
app.synth();

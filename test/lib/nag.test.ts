/**
 * cdk-nag's AWS Solutions checks find nothing unacknowledged in the stack; every acknowledgement
 * is in the construct that causes it, with its reason.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { type Stack, Validations } from 'aws-cdk-lib';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { AwsSolutionsChecks } from 'cdk-nag';
import { synthesize } from './fixtures';

interface ValidationReport {
  pluginReports: {
    pluginName: string;
    violations: { ruleName: string; violatingConstructs?: { constructPath: string }[] }[];
  }[];
}

/** Synthesizes with the checks; returns every unacknowledged finding as `rule at path`. */
function findings(addToStack: (stack: Stack) => void = () => undefined): string[] {
  const { app, stack } = synthesize();
  addToStack(stack);
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  try {
    app.synth();
    return [];
  } catch (err) {
    const report = path.join(app.outdir, 'validation-report.json');
    let parsed: ValidationReport;
    try {
      parsed = JSON.parse(readFileSync(report, 'utf8')) as ValidationReport;
    } catch {
      throw err;
    }
    return parsed.pluginReports.flatMap((plugin) =>
      plugin.violations.flatMap((v) =>
        (v.violatingConstructs ?? []).map((c) => `${v.ruleName} at ${c.constructPath}`),
      ),
    );
  }
}

test('AwsSolutionsChecks report no unacknowledged finding', () => {
  expect(findings()).toEqual([]);
});

test('the checks do run: an unencrypted queue added to the stack is reported', () => {
  expect(
    findings((stack) => new sqs.Queue(stack, 'Unchecked', { encryption: sqs.QueueEncryption.UNENCRYPTED })),
  ).toEqual(expect.arrayContaining(['AwsSolutions-SQS2 at Test/Unchecked/Resource']));
});

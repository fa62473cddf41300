/**
 * cdk-nag's AWS Solutions checks find nothing unacknowledged in the stack; every acknowledgement
 * is in the construct that causes it, with its reason.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { type Stack, Validations } from 'aws-cdk-lib';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import type { PgferryConfigInput } from '../../../lib/config';
import { acknowledge } from '../../../lib/nag';
import type { PgferryStack } from '../../../lib/pgferry-stack';
import { minimalConfig, synthesize } from './fixtures';

interface ValidationReport {
  pluginReports: {
    pluginName: string;
    violations: { ruleName: string; violatingConstructs?: { constructPath: string }[] }[];
  }[];
}

/** The AwsSolutions acknowledgements of the construct tree under `root`, as `id at path`. */
function acknowledgements(root: IConstruct): string[] {
  return root.node.findAll().flatMap((construct) =>
    construct.node.metadata
      .filter((entry) => entry.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY && entry.data)
      .flatMap((entry) => Object.keys(entry.data as Record<string, string>))
      .map((id) => id.replace(/^annotation::/i, ''))
      .filter((id) => id.startsWith('AwsSolutions-'))
      .map((id) => `${id} at ${construct.node.path}`),
  );
}

/**
 * AwsSolutionsChecks that record which acknowledgement answered each finding: the nearest one
 * up the tree, as cdk-nag looks for them (NagPack.isAcknowledged).
 */
function recordingChecks(app: IConstruct, used: Set<string>): AwsSolutionsChecks {
  const checks = new AwsSolutionsChecks(app);
  const hook = checks as unknown as { isAcknowledged(resource: IConstruct, ruleId: string): boolean };
  const original = hook.isAcknowledged.bind(checks);
  hook.isAcknowledged = (resource, ruleId) => {
    const acknowledged = original(resource, ruleId);
    for (let c: IConstruct | undefined = resource; acknowledged && c; c = c.node.scope) {
      if (acknowledgements(c).includes(`${ruleId} at ${c.node.path}`)) {
        used.add(`${ruleId} at ${c.node.path}`);
        break;
      }
    }
    return acknowledged;
  };
  return checks;
}

/** Synthesizes with the checks; returns every unacknowledged finding as `rule at path`. */
function findings(
  addToStack: (stack: Stack) => void = () => undefined,
  used: Set<string> = new Set(),
  config?: PgferryConfigInput,
): string[] {
  const { app, stack } = synthesize(config, { cloudFormationValidation: true });
  addToStack(stack);
  Validations.of(app).addPlugins(recordingChecks(app, used));
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

/** Acknowledgements that answered no finding: each would hide a future finding nobody reviewed. */
function unusedAcknowledgements(
  addToStack: (stack: Stack) => void = () => undefined,
  config?: PgferryConfigInput,
) {
  const used = new Set<string>();
  let all: string[] = [];
  const found = findings(
    (stack) => {
      addToStack(stack);
      all = acknowledgements(stack);
    },
    used,
    config,
  );
  expect(found).toEqual([]);
  // Not vacuous: the stack acknowledges dozens of findings, every one of them answered.
  expect(all.length).toBeGreaterThan(20);
  return all.filter((a) => !used.has(a));
}

test('every acknowledgement answers a finding: none covers a grant the code does not make', () => {
  expect(unusedAcknowledgements()).toEqual([]);
});

test('with a minimal configuration too (no targets, no cutover services, no break-glass role)', () => {
  expect(unusedAcknowledgements(() => undefined, minimalConfig())).toEqual([]);
});

test('the check does find an acknowledgement that answers nothing', () => {
  expect(
    unusedAcknowledgements((stack) =>
      acknowledge(
        (stack as PgferryStack).store.bucket,
        'AwsSolutions-IAM5[Action::s3:*]',
        'acknowledges a grant nobody makes',
      ),
    ),
  ).toEqual(['AwsSolutions-IAM5[Action::s3:*] at Test/Store/Bucket']);
});

/**
 * The cost model of docs/cost.md: what pgferry on AWS costs per month for a fleet of databases,
 * from list prices, the task sizes the stack uses (core/task-size.ts) and the storage classes the
 * retention policy's lifecycle rules give each kept backup (core/retention.ts, simulated over
 * three years of daily backups). test/unit/scripts/cost-model.test.ts recomputes the doc's table
 * from this module, so the numbers there cannot drift from the code.
 */

import {
  DEFAULT_RETENTION,
  decideRetention,
  EXPIRED_AFTER_DAYS,
  EXPIRED_NONCURRENT_DAYS,
  lifecycleRulesFor,
  type RetentionPolicy,
} from '../core/retention';
import { dumpTaskSize } from '../core/task-size';

/** US East (N. Virginia) list prices in USD, as of PRICE_DATE. */
export const PRICES = {
  fargate: {
    arm64: { vcpuHour: 0.03238, gbHour: 0.00356 },
    x86_64: { vcpuHour: 0.04048, gbHour: 0.004445 },
    /** Ephemeral storage above the free 20 GB. */
    storageGbHour: 0.000111,
  },
  s3: {
    gbMonth: { STANDARD: 0.023, STANDARD_IA: 0.0125, GLACIER_IR: 0.004 },
    putPer1000: 0.005,
    getPer1000: 0.0004,
    transitionPer1000: { STANDARD_IA: 0.01, GLACIER_IR: 0.02 },
  },
  kmsKeyMonth: 1,
  stepFunctionsPerTransition: 0.000025,
  lambda: { arm64GbSecond: 0.0000133334, perRequest: 0.0000002 },
  cloudWatch: { alarmMonth: 0.1, metricMonth: 0.3, dashboardMonth: 3, logsIngestGb: 0.5 },
  secretMonth: 0.4,
  /** An interface endpoint per zone, per hour; a NAT gateway per hour (with its IPv4 address) and per GB. */
  interfaceEndpointHour: 0.01,
  natGatewayHour: 0.05,
  crossAzGb: 0.02,
} as const;
export const PRICE_DATE = '2026-12-01';
export const REGION = 'us-east-1';
const HOURS_PER_MONTH = 730;
const GIB = 1024 ** 3;

/** What the model is asked about. */
export interface Fleet {
  readonly databases: number;
  /** Each database's size: what pg_dump reads over the network. */
  readonly databaseGb: number;
  /** Each backup as stored (compressed). */
  readonly backupGb: number;
  /** Servers: one password secret each (one login per server). */
  readonly servers: number;
  readonly architecture: 'arm64' | 'x86_64';
  readonly retention?: RetentionPolicy;
}

/** Assumptions, stated in the doc beside the table. */
export const ASSUMPTIONS = {
  backupsPerMonth: 30,
  /** pg_dump streaming from the server to S3 through zstd, per second (network-bound on AWS). */
  dumpMbPerSecond: 50,
  /** Fargate bills from the image pull: about a minute before pg_dump starts. */
  taskStartSeconds: 60,
  /** S3 multipart part size, and the small objects of a backup (manifest, report, globals, lease, job). */
  partMb: 64,
  smallPutsPerBackup: 20,
  getsPerBackup: 100,
  /** Preflight, Dump, Record and the end: the workflow's transitions on success. */
  stateTransitionsPerBackup: 4,
  lambdaGbSecondsPerBackup: 2 * 3 * 0.5,
  lambdaRequestsPerBackup: 2,
  logGbPerBackup: 0.001,
  /** Custom metrics per database (core/metrics.ts): last backup, duration, stored bytes. */
  metricsPerDatabase: 3,
  /** Without a known zone, a task lands in the database's zone half the time (two zones). */
  crossAzShare: 0.5,
  interfaceEndpoints: 7,
  zones: 2,
  /** Alarms of the deployment: a failure alarm per workflow (4) and three dead-letter alarms. */
  deploymentAlarms: 7,
} as const;

/** Steady-state GB-months per backup-GB in each storage class, and transitions per month. */
export function storageProfile(policy: RetentionPolicy = DEFAULT_RETENTION): {
  gbMonths: Record<'STANDARD' | 'STANDARD_IA' | 'GLACIER_IR', number>;
  transitionsPerMonth: Record<'STANDARD_IA' | 'GLACIER_IR', number>;
} {
  const day = 86_400_000;
  const start = Date.UTC(2024, 0, 1, 2);
  const now = start + 3 * 365 * day;
  const backups = Array.from({ length: 3 * 365 + 1 }, (_, i) => ({
    id: `b${i}`,
    time: new Date(start + i * day).toISOString(),
  }));
  const rules = new Map(lifecycleRulesFor(policy).map((r) => [r.tagValue, r.transitions]));
  const gbMonths = { STANDARD: 0, STANDARD_IA: 0, GLACIER_IR: 0 };
  const transitionsPerMonth = { STANDARD_IA: 0, GLACIER_IR: 0 };
  for (const decision of decideRetention(backups, policy, new Date(now))) {
    if (!decision.keep || !decision.tier) continue;
    const age = (now - Date.parse(decision.time)) / day;
    const transitions = rules.get(decision.tier) ?? [];
    const current = [...transitions].reverse().find((t) => age >= t.afterDays);
    gbMonths[current?.storageClass ?? 'STANDARD'] += 1;
    // A transition happens once per backup that reaches it: count those reaching it within a month.
    for (const t of transitions)
      if (age >= t.afterDays && age < t.afterDays + 30) transitionsPerMonth[t.storageClass] += 1;
  }
  // Each month's expired backups stay a day, then their noncurrent versions a week more.
  gbMonths.STANDARD += (ASSUMPTIONS.backupsPerMonth * (EXPIRED_AFTER_DAYS + EXPIRED_NONCURRENT_DAYS)) / 30;
  return { gbMonths, transitionsPerMonth };
}

export interface CostLine {
  readonly item: string;
  readonly perMonth: number;
}

/** The monthly cost of a fleet, by item (USD). */
export function monthlyCost(fleet: Fleet): CostLine[] {
  const a = ASSUMPTIONS;
  const p = PRICES;
  const backups = fleet.databases * a.backupsPerMonth;
  const size = dumpTaskSize(fleet.databaseGb * GIB);
  const vcpu = Number(size.cpu) / 1024;
  const memoryGb = Number(size.memoryMiB) / 1024;
  const hours = (a.taskStartSeconds + (fleet.databaseGb * 1024) / a.dumpMbPerSecond) / 3600;
  const rate = p.fargate[fleet.architecture];
  const fargate =
    backups *
    hours *
    (vcpu * rate.vcpuHour +
      memoryGb * rate.gbHour +
      (size.ephemeralStorageGiB - 20) * p.fargate.storageGbHour);
  const profile = storageProfile(fleet.retention);
  const storage =
    fleet.databases *
    fleet.backupGb *
    (profile.gbMonths.STANDARD * p.s3.gbMonth.STANDARD +
      profile.gbMonths.STANDARD_IA * p.s3.gbMonth.STANDARD_IA +
      profile.gbMonths.GLACIER_IR * p.s3.gbMonth.GLACIER_IR);
  const puts = backups * (Math.ceil((fleet.backupGb * 1024) / a.partMb) + a.smallPutsPerBackup);
  const requests =
    (puts / 1000) * p.s3.putPer1000 +
    ((backups * a.getsPerBackup) / 1000) * p.s3.getPer1000 +
    fleet.databases *
      ((profile.transitionsPerMonth.STANDARD_IA / 1000) * p.s3.transitionPer1000.STANDARD_IA +
        (profile.transitionsPerMonth.GLACIER_IR / 1000) * p.s3.transitionPer1000.GLACIER_IR);
  const endpoints = a.interfaceEndpoints * a.zones * HOURS_PER_MONTH * p.interfaceEndpointHour;
  const crossAz = backups * fleet.databaseGb * a.crossAzShare * p.crossAzGb;
  const stepFunctions = backups * a.stateTransitionsPerBackup * p.stepFunctionsPerTransition;
  const lambda =
    backups *
    (a.lambdaGbSecondsPerBackup * p.lambda.arm64GbSecond + a.lambdaRequestsPerBackup * p.lambda.perRequest);
  const cloudWatch =
    (fleet.databases + a.deploymentAlarms) * p.cloudWatch.alarmMonth +
    fleet.databases * a.metricsPerDatabase * p.cloudWatch.metricMonth +
    p.cloudWatch.dashboardMonth +
    backups * a.logGbPerBackup * p.cloudWatch.logsIngestGb;
  return [
    { item: `Fargate (${fleet.architecture}, ${vcpu} vCPU / ${memoryGb} GB)`, perMonth: fargate },
    { item: 'S3 storage (by tier, steady state)', perMonth: storage },
    { item: 'S3 requests and transitions', perMonth: requests },
    { item: 'KMS (two keys; bucket keys make requests negligible)', perMonth: 2 * p.kmsKeyMonth },
    { item: 'VPC interface endpoints (7, two zones)', perMonth: endpoints },
    { item: 'Cross-AZ transfer (half the dumps)', perMonth: crossAz },
    { item: 'Step Functions', perMonth: stepFunctions },
    { item: 'Lambda', perMonth: lambda },
    { item: 'CloudWatch (alarms, metrics, dashboard, logs)', perMonth: cloudWatch },
    { item: 'Secrets Manager (one secret per server)', perMonth: fleet.servers * p.secretMonth },
  ];
}

/** The doc's examples: 1, 100 and 1,000 databases of 10 GB, 2.5 GB per backup, ten per server. */
export const EXAMPLES: readonly Fleet[] = [1, 100, 1000].map((databases) => ({
  databases,
  databaseGb: 10,
  backupGb: 2.5,
  servers: Math.ceil(databases / 10),
  architecture: 'arm64' as const,
}));

const usd = (n: number) =>
  `$${n.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`;

/** The Markdown table docs/cost.md holds between its `cost-table` markers. */
export function renderCostTable(examples: readonly Fleet[] = EXAMPLES): string {
  const costs = examples.map(monthlyCost);
  const header = `| per month (${REGION}, ${PRICE_DATE}) | ${examples.map((e) => `${e.databases.toLocaleString('en-US')} database${e.databases === 1 ? '' : 's'}`).join(' | ')} |`;
  const rule = `|---|${examples.map(() => '---:').join('|')}|`;
  const rows = costs[0].map(
    (line, i) => `| ${line.item} | ${costs.map((c) => usd(c[i].perMonth)).join(' | ')} |`,
  );
  const totals = costs.map((c) => c.reduce((sum, l) => sum + l.perMonth, 0));
  const x86 = examples.map((e) => monthlyCost({ ...e, architecture: 'x86_64' })[0].perMonth);
  return [
    header,
    rule,
    ...rows,
    `| **total** | ${totals.map((t) => `**${usd(t)}**`).join(' | ')} |`,
    `| per database | ${totals.map((t, i) => usd(t / examples[i].databases)).join(' | ')} |`,
    `| Fargate on x86_64 instead | ${x86.map(usd).join(' | ')} |`,
  ].join('\n');
}

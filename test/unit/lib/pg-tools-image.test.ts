/**
 * The pg-tools images (containers/pg-tools/Dockerfile): two targets — client tools for backup,
 * restore and migrate, and verify's with the servers and locales — built for an explicit platform
 * (arm64 by default), from a base pinned by digest, with nothing test-only or platform-specific
 * installed. No Docker here: the Dockerfile's build-stage commands that need none are run as they
 * are written, the rest is read.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Template } from 'aws-cdk-lib/assertions';
import { RUNNER_MALLOC_TUNABLES } from '../../../cli/local-executor';
import { RUNNER_CONTAINER_ENTRY, RUNNER_NODE_FLAGS, runnerNodeFlags } from '../../../core/workflows';
import { REPO_ROOT } from '../../../lib/paths';
import { PG_TOOLS_BUILD_CONTEXT, PG_TOOLS_DOCKERFILE } from '../../../lib/pg-tools-task';
import { definitionOf, minimalConfig, synthesize } from './fixtures';

const dockerfile = readFileSync(path.join(REPO_ROOT, PG_TOOLS_DOCKERFILE), 'utf8');

interface Instruction {
  readonly keyword: string;
  readonly args: string;
}
interface Stage {
  readonly from: string;
  readonly name?: string;
  readonly instructions: Instruction[];
}

/** The Dockerfile's instructions (continuation lines joined, comments dropped), by stage. */
function stages(): { args: Instruction[]; stages: Stage[] } {
  const joined = dockerfile
    .split('\n')
    .filter((line) => !/^\s*#/.test(line))
    .join('\n')
    .replace(/\\\n/g, ' ');
  const instructions = joined
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean)
    .map((line) => {
      const [keyword] = line.split(/\s+/);
      return { keyword: keyword.toUpperCase(), args: line.slice(keyword.length).trim() };
    });
  const result: { args: Instruction[]; stages: Stage[] } = { args: [], stages: [] };
  for (const instruction of instructions) {
    if (instruction.keyword === 'FROM') {
      const match = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(instruction.args);
      result.stages.push({ from: match?.[1] ?? '', name: match?.[2], instructions: [] });
    } else if (result.stages.length === 0) result.args.push(instruction);
    else result.stages[result.stages.length - 1].instructions.push(instruction);
  }
  return result;
}

function stage(name: string): Stage {
  const found = stages().stages.find((s) => s.name === name);
  if (!found) throw new Error(`no stage ${name} in the Dockerfile`);
  return found;
}

/** The build stage's RUN command that mentions `needle`. */
function buildRun(needle: string): string {
  const runs = stage('build').instructions.filter((i) => i.keyword === 'RUN' && i.args.includes(needle));
  expect(runs).toHaveLength(1);
  return runs[0].args;
}

interface ImageAsset {
  /** Where the build context was staged. */
  directory: string;
  source: { directory: string; dockerFile?: string; dockerBuildTarget?: string; platform?: string };
}

/** The stack's template and its Docker image assets, as the asset manifest records them. */
function synthesizeImages(config?: Parameters<typeof synthesize>[0]): {
  template: Template;
  assets: ImageAsset[];
} {
  const { app, stack } = synthesize(config);
  const template = Template.fromStack(stack);
  const assembly = app.synth();
  const manifest = JSON.parse(readFileSync(path.join(assembly.directory, 'Test.assets.json'), 'utf8')) as {
    dockerImages: Record<string, { source: ImageAsset['source'] }>;
  };
  const assets = Object.values(manifest.dockerImages).map(({ source }) => ({
    directory: path.join(assembly.directory, source.directory),
    source,
  }));
  return { template, assets };
}

describe('the stack', () => {
  const { template, assets } = synthesizeImages();

  test('builds two images from the one Dockerfile: tools and verify, for linux/arm64 by default', () => {
    expect(
      assets.map((a) => [a.source.dockerBuildTarget, a.source.platform, a.source.dockerFile]).sort(),
    ).toEqual([
      ['tools', 'linux/arm64', PG_TOOLS_DOCKERFILE],
      ['verify', 'linux/arm64', PG_TOOLS_DOCKERFILE],
    ]);
  });

  test('runs both task definitions on arm64 by default', () => {
    const platforms = Object.values(template.findResources('AWS::ECS::TaskDefinition')).map(
      (r) => (r as { Properties: { RuntimePlatform: unknown } }).Properties.RuntimePlatform,
    );
    expect(platforms).toEqual([
      { CpuArchitecture: 'ARM64', OperatingSystemFamily: 'LINUX' },
      { CpuArchitecture: 'ARM64', OperatingSystemFamily: 'LINUX' },
    ]);
  });

  test('builds and runs x86-64 when the configuration says so', () => {
    const x86 = synthesizeImages(minimalConfig({ tasks: { architecture: 'x86_64' } }));
    expect(x86.assets.map((a) => a.source.platform)).toEqual(['linux/amd64', 'linux/amd64']);
    x86.template.resourcePropertiesCountIs(
      'AWS::ECS::TaskDefinition',
      { RuntimePlatform: { CpuArchitecture: 'X86_64' } },
      2,
    );
  });

  test('verify runs the verify image; backup, restore and migrate the tools image', () => {
    const taskDefinitionOf = (workflow: string, state: string) =>
      (
        definitionOf(template, `${workflow}StateMachine`).States[state].Parameters as {
          TaskDefinition: string;
        }
      ).TaskDefinition;
    expect(taskDefinitionOf('Verify', 'Verify')).toMatch(/VerifyToolsTaskDefinition/);
    for (const [workflow, state] of [
      ['Backup', 'Dump'],
      ['Restore', 'Restore'],
      ['Migrate', 'Migrate'],
      ['Migrate', 'SchemaTest'],
    ]) {
      expect(taskDefinitionOf(workflow, state)).toMatch(/PgToolsTaskDefinition/);
    }
    const images = Object.fromEntries(
      Object.entries(template.findResources('AWS::ECS::TaskDefinition')).map(([id, r]) => [
        id.replace(/[0-9A-F]{8}$/, ''),
        JSON.stringify(
          (r as { Properties: { ContainerDefinitions: { Image: unknown }[] } }).Properties
            .ContainerDefinitions[0].Image,
        ),
      ]),
    );
    expect(images.PgToolsTaskDefinition).not.toEqual(images.VerifyToolsTaskDefinition);
  });

  test("the restore and verify tasks' command gives their runner its young generation; the others keep the image's", () => {
    const commandOf = (workflow: string, state: string) =>
      (
        definitionOf(template, `${workflow}StateMachine`).States[state].Parameters as {
          Overrides: { ContainerOverrides: { Command?: string[] }[] };
        }
      ).Overrides.ContainerOverrides[0].Command;
    for (const [workflow, state] of [
      ['Restore', 'Restore'],
      ['Verify', 'Verify'],
    ]) {
      expect(commandOf(workflow, state)).toEqual([
        '--min-semi-space-size=6',
        '--max-semi-space-size=6',
        RUNNER_CONTAINER_ENTRY,
      ]);
    }
    for (const [workflow, state] of [
      ['Backup', 'Dump'],
      ['Migrate', 'Migrate'],
      ['Migrate', 'SchemaTest'],
    ]) {
      expect(commandOf(workflow, state)).toBeUndefined();
    }
  });

  test("the image's build context holds only what the build copies (no node_modules, no tests)", () => {
    const [asset] = assets;
    const listing = (dir: string, prefix = ''): string[] =>
      readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
        entry.isDirectory()
          ? listing(path.join(dir, entry.name), `${prefix}${entry.name}/`)
          : [`${prefix}${entry.name}`],
      );
    const files = listing(asset.directory);
    expect(files.length).toBeGreaterThan(10);
    for (const file of files) {
      expect(
        PG_TOOLS_BUILD_CONTEXT.some((allowed) => file === allowed || file.startsWith(`${allowed}/`)),
      ).toBe(true);
    }
    // Everything the Dockerfile copies is in it.
    const copied = stages()
      .stages.flatMap((s) => s.instructions)
      .filter((i) => i.keyword === 'COPY' && !i.args.startsWith('--from'))
      .flatMap((i) => i.args.split(/\s+/).slice(0, -1));
    for (const source of copied)
      expect(files.some((f) => f === source || f.startsWith(`${source}/`))).toBe(true);
  });
});

describe('the Dockerfile', () => {
  test('pins its base image by digest, in one build argument', () => {
    const { args, stages: all } = stages();
    const base = args.find((a) => a.keyword === 'ARG' && a.args.startsWith('NODE_IMAGE='));
    expect(base?.args).toMatch(/^NODE_IMAGE=\S+:22-bookworm-slim@sha256:[0-9a-f]{64}$/);
    const names = all.map((s) => s.name);
    for (const { from } of all) expect(/^\$\{NODE_IMAGE\}$/.test(from) || names.includes(from)).toBe(true);
  });

  test('has the two targets the stack builds', () => {
    expect(stages().stages.map((s) => s.name)).toEqual(['build', 'tools', 'verify']);
  });

  test("bundles on the building machine's own platform (its output is JavaScript): no emulated npm", () => {
    expect(dockerfile).toMatch(/^FROM --platform=\$BUILDPLATFORM \$\{NODE_IMAGE\} AS build$/m);
  });

  test('the tools image has the client tools of every major, no server, no locales', () => {
    const runs = stage('tools')
      .instructions.filter((i) => i.keyword === 'RUN')
      .map((i) => i.args)
      .join('\n');
    expect(stage('tools').instructions).toContainEqual({
      keyword: 'ARG',
      args: 'PG_MAJORS="13 14 15 16 17 18"',
    });
    expect(runs).toContain('pkgs="$pkgs postgresql-client-$m"');
    expect(runs).not.toMatch(/postgresql-\$m\b|locales/);
    expect(runs).toContain('https://apt.postgresql.org/pub/repos/apt bookworm-pgdg main');
  });

  test('the verify image adds the servers of every major, with no cluster, and every locale', () => {
    const runs = stage('verify')
      .instructions.filter((i) => i.keyword === 'RUN')
      .map((i) => i.args)
      .join('\n');
    expect(stage('verify').from).toBe('tools');
    expect(runs).toContain('pkgs="$pkgs postgresql-$m"');
    expect(runs).toContain('locales-all');
    expect(runs).toContain('create_main_cluster = false');
  });

  test('ships the RDS CA bundle and trusts it for libpq and Node.js', () => {
    expect(dockerfile).toContain('https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem');
    expect(dockerfile).toContain(
      'ln -s /etc/pgferry/rds-global-bundle.pem /home/pgferry/.postgresql/root.crt',
    );
    expect(dockerfile).toContain('NODE_EXTRA_CA_CERTS=/etc/pgferry/rds-global-bundle.pem');
  });

  test("the runner's default Node flags (its CMD) and allocator settings are the local runner's", () => {
    const last = (keyword: string) =>
      stage('tools')
        .instructions.filter((i) => i.keyword === keyword)
        .pop()?.args;
    expect(JSON.parse(last('ENTRYPOINT') ?? '')).toEqual(['node', '--enable-source-maps']);
    expect(JSON.parse(last('CMD') ?? '')).toEqual([...RUNNER_NODE_FLAGS, RUNNER_CONTAINER_ENTRY]);
    expect(runnerNodeFlags('dump')).toEqual(RUNNER_NODE_FLAGS);
    // The verify image inherits both: a command override replaces the CMD alone.
    expect(stage('verify').instructions.map((i) => i.keyword)).not.toEqual(
      expect.arrayContaining(['ENTRYPOINT']),
    );
    expect(stage('verify').instructions.map((i) => i.keyword)).not.toEqual(expect.arrayContaining(['CMD']));
    expect(buildRun('node_modules/.bin/esbuild')).toContain('--outfile=/out/main.js');
    expect(stage('tools').instructions).toContainEqual({ keyword: 'COPY', args: '--from=build /out/ /app/' });
    expect(dockerfile).toContain(`GLIBC_TUNABLES=${RUNNER_MALLOC_TUNABLES}`);
  });

  test('both images run as the non-root user 10001', () => {
    for (const name of ['tools', 'verify']) {
      const users = stage(name).instructions.filter((i) => i.keyword === 'USER');
      expect(users[users.length - 1].args).toBe('10001');
    }
  });
});

describe("the build stage's commands, run as written", () => {
  test('the dependencies npm installs hold nothing test-only or platform-specific', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-image-'));
    for (const file of ['package.json', 'package-lock.json'])
      copyFileSync(path.join(REPO_ROOT, file), path.join(dir, file));
    execFileSync('sh', ['-c', buildRun('delete pkg.devDependencies')], { cwd: dir });
    const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8'));
    const lock = JSON.parse(readFileSync(path.join(REPO_ROOT, 'package-lock.json'), 'utf8'));
    expect(pkg.devDependencies).toBeUndefined();
    expect(pkg.dependencies.esbuild).toBe(lock.packages['node_modules/esbuild'].version);
    // What npm may install for these dependencies: the lock file's entries not marked dev. None of
    // them may be bound to one platform unless it is optional (npm then skips it elsewhere).
    const bound = Object.entries(
      lock.packages as Record<string, { dev?: boolean; optional?: boolean; os?: string[]; cpu?: string[] }>,
    )
      .filter(([name, entry]) => name && !entry.dev && (entry.os || entry.cpu) && !entry.optional)
      .map(([name]) => name);
    expect(bound).toEqual([]);
    // The test-only servers are devDependencies, so none of them is installed.
    for (const name of ['pg14', 'pg17']) expect(lock.packages[`node_modules/${name}`].dev).toBe(true);
    expect(Object.keys(pkg.dependencies)).not.toEqual(expect.arrayContaining(['pg14']));
  });

  test("the runner's bundle is one self-contained file that runs without node_modules", () => {
    const out = mkdtempSync(path.join(tmpdir(), 'pgferry-runner-'));
    const command = buildRun('node_modules/.bin/esbuild').replace('--outfile=/out/', `--outfile=${out}/`);
    expect(command).not.toBe(buildRun('node_modules/.bin/esbuild'));
    execFileSync('sh', ['-c', command], { cwd: REPO_ROOT, stdio: 'pipe' });
    expect(readdirSync(out).sort()).toEqual(['main.js', 'main.js.map']);
    // Run from a folder with no node_modules above it: a missing module would fail to load.
    const run = spawnSync(process.execPath, [path.join(out, 'main.js')], {
      cwd: out,
      env: { PATH: process.env.PATH ?? '' },
      encoding: 'utf8',
    });
    expect(run.status).toBe(1);
    // An error is logged on stderr, as one JSON line.
    const lines = run.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    // It got as far as reading its environment: every module it needed loaded.
    expect(JSON.parse(lines[0])).toMatchObject({
      errorMessage: expect.stringMatching(/^PGFERRY_ACTION must be/),
    });
  });
});

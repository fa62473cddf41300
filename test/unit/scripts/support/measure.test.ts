/** The benchmark's measurement of a command: its CPU seconds, exact, whichever of its processes spent them. */
import { childrenCpuSeconds, measure } from '../../../../scripts/support/measure';

test("childrenCpuSeconds reads the children's line of bash's `times`", () => {
  expect(childrenCpuSeconds('0m0.004s 0m0.002s\n0m1.250s 0m0.500s\n')).toBeCloseTo(1.75, 5);
  expect(childrenCpuSeconds('0m0.004s 0m0.002s\n1m2.000s 0m0.000s\n')).toBeCloseTo(62, 5);
  expect(childrenCpuSeconds('')).toBeUndefined();
  expect(childrenCpuSeconds('0m0.004s 0m0.002s\nnonsense\n')).toBeUndefined();
});

test("measure counts the CPU of the command's grandchildren, and keeps its output and exit status", async () => {
  // The busy loop runs in a grandchild (sh → sh), which the sampled tree could miss if short-lived.
  const burn = "sh -c 'i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done'; echo done";
  const m = await measure('sh', ['-c', burn], { otherCpu: () => 0 });
  expect(m.stdout).toBe('done\n');
  expect(m.stderr).toBe('');
  expect(m.cpuSeconds).toBeGreaterThan(0.05);
  expect(m.cpuSeconds).toBeLessThan(m.seconds * 4 + 0.1);
  expect(m.otherCpuSeconds).toBe(0);
  await expect(measure('sh', ['-c', 'exit 3'])).rejects.toThrow('failed (3)');
}, 30_000);

test('measure of a command that exits without reading its input (more than a pipe holds) resolves', async () => {
  // Writing the input then fails with EPIPE: the command's exit status, not the write, decides.
  const m = await measure('true', [], { input: 'x'.repeat(1 << 20) });
  expect(m.stdout).toBe('');
  await expect(measure('sh', ['-c', 'exit 3'], { input: 'x'.repeat(1 << 20) })).rejects.toThrow('failed (3)');
}, 30_000);

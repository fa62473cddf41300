/**
 * Headless Chromium for the web console's tests: Debian's `chromium` driven by playwright-core
 * (nothing downloaded at test time). A fresh machine without it gets it from apt, as CI's
 * .ci/run installs its other system packages. Screenshots go to test-output/console/ (ignored by git).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import * as path from 'node:path';
import { type Browser, chromium } from 'playwright-core';
import { REPO } from './cli';

export const CHROMIUM = '/usr/bin/chromium';

/** Where the console's tests save their screenshots. */
export const SCREENSHOTS = path.join(REPO, 'test-output', 'console');

/** Installs Debian's chromium when it is missing (root on the CI machines), then launches it headless. */
export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit' });
    execFileSync('apt-get', ['install', '-y', '-qq', 'chromium'], {
      stdio: 'inherit',
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
  }
  mkdirSync(SCREENSHOTS, { recursive: true });
  return chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'], headless: true });
}

/** A screenshot's path under test-output/console/. */
export const screenshot = (name: string) => path.join(SCREENSHOTS, `${name}.png`);

/**
 * The dashboard's backups widget (a CloudWatch custom widget, lib/backups-widget.ts): every
 * configured database with its newest backup's age, size and duration, its verification, a trend
 * of size and duration over the last 30 days, coloured by freshness against its alarm's threshold,
 * and links to its runbooks with the database filled in. Read from the store's catalog (one
 * listing, one read per manifest and per verification report consulted); HTML without script, as
 * CloudWatch renders custom widgets. Every text from the store or the configuration is escaped.
 */
import { type CatalogEntry, isDatedAfter, latestReport, scanStore } from '../../../core/catalog';
import type { RunbookKind } from '../../../core/console-deployment';
import { originOf } from '../../../core/contracts';
import { SHORT_LIVED_ORIGINS } from '../../../core/retention';
import type { BackupStore } from '../../../core/store';
import { catalogNameOf } from '../../../core/store-keys';

/** A configured database as the widget shows it. */
export interface WidgetDatabase {
  /** Its catalog name: the configured id. */
  readonly id: string;
  /** Its freshness alarm's threshold. */
  readonly alarmAfterHours: number;
}

/** How fresh a database's newest backup is, against its alarm's threshold. */
export type Freshness = 'fresh' | 'ageing' | 'late' | 'none';

/** Past this share of the threshold a backup is `ageing`: one missed nightly run of a 26-hour alarm. */
export const AGEING_SHARE = 0.75;

export const TREND_DAYS = 30;

export interface TrendPoint {
  /** When the backup started (ms since the epoch). */
  readonly time: number;
  readonly storedBytes: number;
  readonly durationSeconds: number;
}

export interface DatabaseRow {
  readonly id: string;
  readonly alarmAfterHours: number;
  readonly freshness: Freshness;
  readonly newest?: {
    readonly id: string;
    readonly finishedAt: string;
    readonly ageSeconds: number;
    readonly storedBytes: number;
    readonly durationSeconds: number;
    /** Its latest verification's result; undefined: never verified. */
    readonly verification?: 'passed' | 'failed';
  };
  /** The newest backup whose latest verification passed (maybe the newest itself). */
  readonly newestVerified?: { readonly id: string; readonly ageSeconds: number };
  /** The last 30 days' backups, oldest first. */
  readonly trend: readonly TrendPoint[];
}

/** A catalog name in the store that no configured database has (a target's safety backups, a former id). */
export interface OtherName {
  readonly name: string;
  readonly backups: number;
  readonly newestAgeSeconds?: number;
}

export interface WidgetData {
  readonly rows: DatabaseRow[];
  readonly others: OtherName[];
}

function ageSeconds(entry: CatalogEntry, now: Date): number {
  return Math.max(0, Math.floor((now.getTime() - Date.parse(entry.manifest.finishedAt)) / 1000));
}

export function freshnessOf(ageSecondsValue: number | undefined, alarmAfterHours: number): Freshness {
  if (ageSecondsValue === undefined) return 'none';
  const hours = ageSecondsValue / 3600;
  if (hours >= alarmAfterHours) return 'late';
  if (hours >= alarmAfterHours * AGEING_SHARE) return 'ageing';
  return 'fresh';
}

/**
 * Each configured database's row, from one scan of the store: its routine backups (not safety or
 * migration archives, not dated after now — as `pgferry status` counts them).
 */
export async function widgetData(
  store: BackupStore,
  databases: readonly WidgetDatabase[],
  now: Date,
): Promise<WidgetData> {
  const scan = await scanStore(store);
  const byName = new Map<string, CatalogEntry[]>();
  for (const entry of scan.entries) {
    const name = catalogNameOf(entry.manifest);
    byName.set(name, [...(byName.get(name) ?? []), entry]);
  }
  const since = now.getTime() - TREND_DAYS * 86_400_000;
  const rows: DatabaseRow[] = [];
  for (const db of databases) {
    const counted = (byName.get(db.id) ?? []).filter(
      (e) => !SHORT_LIVED_ORIGINS.has(originOf(e.manifest)) && !isDatedAfter(e.manifest, now),
    );
    const newestEntry = counted[0];
    let verification: 'passed' | 'failed' | undefined;
    let newestVerified: DatabaseRow['newestVerified'];
    for (const entry of counted) {
      if (entry.reportKeys.verify.length === 0) continue;
      const report = await latestReport(store, entry, 'verify');
      if (entry === newestEntry) verification = report?.status;
      if (report?.status === 'passed') {
        newestVerified = { id: entry.manifest.id, ageSeconds: ageSeconds(entry, now) };
        break;
      }
    }
    const newestAge = newestEntry ? ageSeconds(newestEntry, now) : undefined;
    rows.push({
      id: db.id,
      alarmAfterHours: db.alarmAfterHours,
      freshness: freshnessOf(newestAge, db.alarmAfterHours),
      ...(newestEntry && newestAge !== undefined
        ? {
            newest: {
              id: newestEntry.manifest.id,
              finishedAt: newestEntry.manifest.finishedAt,
              ageSeconds: newestAge,
              storedBytes: newestEntry.storedBytes,
              durationSeconds: newestEntry.manifest.durationSeconds,
              ...(verification ? { verification } : {}),
            },
          }
        : {}),
      ...(newestVerified ? { newestVerified } : {}),
      trend: counted
        .filter((e) => Date.parse(e.manifest.startedAt) >= since)
        .map((e) => ({
          time: Date.parse(e.manifest.startedAt),
          storedBytes: e.storedBytes,
          durationSeconds: e.manifest.durationSeconds,
        }))
        .reverse(),
    });
  }
  const configured = new Set(databases.map((d) => d.id));
  const others = [...byName.entries()]
    .filter(([name]) => !configured.has(name))
    .map(([name, entries]) => ({
      name,
      backups: entries.length,
      ...(entries[0] ? { newestAgeSeconds: ageSeconds(entries[0], now) } : {}),
    }))
    .sort((a, b) => a.name.localeCompare(b.name));
  return { rows, others };
}

// --- rendering ---------------------------------------------------------------------------------

/** Text as HTML (element content and quoted attribute values alike). */
export function escapeHtml(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

export function formatAgeShort(seconds: number): string {
  const minutes = Math.floor(seconds / 60);
  const [d, h, m] = [Math.floor(minutes / 1440), Math.floor((minutes % 1440) / 60), minutes % 60];
  if (d > 0) return `${d}d ${h}h`;
  if (h > 0) return `${h}h ${m}m`;
  return `${m}m`;
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

export function formatDuration(seconds: number): string {
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}

/**
 * The SSM console's page that runs `document` with `parameters` filled in (the automation
 * "execute" page reads them from the URL's fragment).
 */
export function runbookUrl(region: string, document: string, parameters: Record<string, string>): string {
  const fragment = Object.entries(parameters)
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)
    .join('&');
  return `https://${encodeURIComponent(region)}.console.aws.amazon.com/systems-manager/automation/execute/${encodeURIComponent(document)}?region=${encodeURIComponent(region)}#${fragment}`;
}

const SPARK = { width: 120, height: 24, pad: 2 };

/** An inline SVG sparkline of `values` at `times` over [from, to]; a dot for a single point. */
export function sparkline(
  points: readonly { time: number; value: number }[],
  from: number,
  to: number,
  label: string,
): string {
  const { width, height, pad } = SPARK;
  const open = `<svg class="spark" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="${escapeHtml(label)}">`;
  if (points.length === 0)
    return `${open}<line x1="${pad}" y1="${height - pad}" x2="${width - pad}" y2="${height - pad}" class="spark-none"/></svg>`;
  const max = Math.max(...points.map((p) => p.value));
  const min = Math.min(...points.map((p) => p.value));
  const x = (t: number) => pad + ((t - from) / Math.max(1, to - from)) * (width - 2 * pad);
  const y = (v: number) =>
    max === min ? height / 2 : height - pad - ((v - min) / (max - min)) * (height - 2 * pad);
  const coords = points.map((p) => `${x(p.time).toFixed(1)},${y(p.value).toFixed(1)}`);
  const last = coords[coords.length - 1].split(',');
  const line = points.length > 1 ? `<polyline points="${coords.join(' ')}" class="spark-line"/>` : '';
  return `${open}${line}<circle cx="${last[0]}" cy="${last[1]}" r="2" class="spark-dot"/></svg>`;
}

export interface RenderOptions {
  readonly now: Date;
  readonly region: string;
  /** The deployed runbooks (restore and migrate need a target). */
  readonly runbooks: Readonly<Partial<Record<RunbookKind, string>>>;
  /** CloudWatch's `widgetContext.theme`. */
  readonly theme?: 'light' | 'dark';
}

const FRESHNESS_TEXT: Record<Freshness, string> = {
  fresh: 'fresh',
  ageing: 'ageing',
  late: 'late: alarm',
  none: 'no backup',
};

const STYLE = `
<style>
.pgf{font:13px/1.4 "Amazon Ember",Helvetica,Arial,sans-serif;color:#16191f}
.pgf.dark{color:#d1d5db}
.pgf table{border-collapse:collapse;width:100%}
.pgf th{text-align:left;font-weight:600;border-bottom:1px solid #aab7b8;padding:4px 6px;white-space:nowrap}
.pgf td{border-bottom:1px solid #eaeded;padding:4px 6px;vertical-align:middle;white-space:nowrap}
.pgf.dark td{border-bottom-color:#414750}
.pgf tr.fresh td:first-child{border-left:6px solid #1d8102}
.pgf tr.ageing td:first-child{border-left:6px solid #f89256}
.pgf tr.late td:first-child,.pgf tr.none td:first-child{border-left:6px solid #d13212}
.pgf .badge{display:inline-block;border-radius:8px;padding:0 6px;font-size:12px;color:#fff}
.pgf .badge.fresh,.pgf .badge.passed{background:#1d8102}
.pgf .badge.ageing{background:#c45d11}
.pgf .badge.late,.pgf .badge.none,.pgf .badge.failed{background:#d13212}
.pgf .badge.unverified{background:#687078}
.pgf .muted{color:#687078}
.pgf .spark-line{fill:none;stroke:#0073bb;stroke-width:1.5}
.pgf .spark-dot{fill:#0073bb}
.pgf .spark-none{stroke:#aab7b8;stroke-dasharray:2 2}
.pgf a{color:#0073bb;margin-right:8px}
.pgf.dark a{color:#44b9d6}
.pgf h4{margin:12px 0 4px}
</style>`;

/** The widget's HTML. */
export function renderWidget(data: WidgetData, options: RenderOptions): string {
  const to = options.now.getTime();
  const from = to - TREND_DAYS * 86_400_000;
  const rows = data.rows.map((row) => {
    const n = row.newest;
    const links = (['backup', 'verify', 'restore', 'migrate'] as const)
      .flatMap((kind) => {
        const document = options.runbooks[kind];
        if (!document) return [];
        const url = runbookUrl(options.region, document, { Database: row.id });
        return [`<a href="${escapeHtml(url)}" target="_blank" rel="noopener noreferrer">${kind}</a>`];
      })
      .join('');
    const verification = n?.verification
      ? `<span class="badge ${n.verification}">${n.verification}</span>`
      : n
        ? '<span class="badge unverified">not verified</span>'
        : '';
    const lastVerified =
      row.newestVerified && row.newestVerified.id !== n?.id
        ? ` <span class="muted">last passed ${escapeHtml(formatAgeShort(row.newestVerified.ageSeconds))} ago</span>`
        : '';
    const size = row.trend.map((p) => ({ time: p.time, value: p.storedBytes }));
    const duration = row.trend.map((p) => ({ time: p.time, value: p.durationSeconds }));
    return [
      `<tr class="${row.freshness}">`,
      `<td><strong>${escapeHtml(row.id)}</strong></td>`,
      `<td><span class="badge ${row.freshness}">${FRESHNESS_TEXT[row.freshness]}</span> ${n ? escapeHtml(formatAgeShort(n.ageSeconds)) : '—'} <span class="muted">/ ${row.alarmAfterHours}h</span></td>`,
      `<td>${n ? escapeHtml(formatBytes(n.storedBytes)) : '—'}</td>`,
      `<td>${n ? escapeHtml(formatDuration(n.durationSeconds)) : '—'}</td>`,
      `<td>${verification}${lastVerified}</td>`,
      `<td>${sparkline(size, from, to, `stored bytes of ${row.id}, last ${TREND_DAYS} days`)}</td>`,
      `<td>${sparkline(duration, from, to, `duration of ${row.id}, last ${TREND_DAYS} days`)}</td>`,
      `<td>${links}</td>`,
      '</tr>',
    ].join('');
  });
  const others =
    data.others.length === 0
      ? ''
      : `<h4>Also in the store (not a configured database)</h4><table><tr><th>catalog name</th><th>backups</th><th>newest</th></tr>${data.others
          .map(
            (o) =>
              `<tr><td>${escapeHtml(o.name)}</td><td>${o.backups}</td><td>${o.newestAgeSeconds === undefined ? '—' : `${escapeHtml(formatAgeShort(o.newestAgeSeconds))} ago`}</td></tr>`,
          )
          .join('')}</table>`;
  return [
    STYLE,
    `<div class="pgf${options.theme === 'dark' ? ' dark' : ''}">`,
    '<table>',
    `<tr><th>database</th><th>newest backup / alarm after</th><th>size</th><th>duration</th><th>verification</th><th>size, ${TREND_DAYS} days</th><th>duration, ${TREND_DAYS} days</th><th>runbooks</th></tr>`,
    ...rows,
    '</table>',
    others,
    `<p class="muted">As of ${escapeHtml(options.now.toISOString())}. Refresh the dashboard to read the store again.</p>`,
    '</div>',
  ].join('\n');
}

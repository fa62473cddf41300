/**
 * The web console's page (served by `pgferry serve` at `/`): plain TypeScript compiled to one
 * script, no framework. Views by the address's hash: the databases (#/), one database's backups
 * with charts (#/db/<name>), a backup (#/backup/<name>/<id>), the forms (#/start/<kind>), a run
 * followed to its end (#/run/<id>) and the recent runs (#/runs). Everything is built as DOM nodes
 * (text from the store is never parsed as HTML). The server validates every form with the API's
 * own schemas; the page shows each field's problem from the 400.
 */

// --- the server -------------------------------------------------------------------------------

const csrfToken = document.querySelector<HTMLMetaElement>('meta[name="csrf-token"]')?.content ?? '';

interface ApiAnswer {
  status: number;
  // biome-ignore lint/suspicious/noExplicitAny: JSON from the API, read field by field
  body: any;
}

class SignedOut extends Error {}

async function api(method: string, url: string, body?: unknown, headers: Record<string, string> = {}) {
  const response = await fetch(url, {
    method,
    credentials: 'same-origin',
    headers: {
      ...(method === 'GET' ? {} : { 'X-CSRF-Token': csrfToken }),
      ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
      ...headers,
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401) throw new SignedOut();
  const text = await response.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = { error: 'NotJson', message: text.slice(0, 200) };
  }
  return { status: response.status, body: parsed } as ApiAnswer;
}

async function read(url: string) {
  const answer = await api('GET', url);
  if (answer.status !== 200) throw new Error(answer.body?.message ?? `${url}: HTTP ${answer.status}`);
  return answer.body;
}

// --- DOM helpers ------------------------------------------------------------------------------

type Child = Node | string | number | null | undefined | false;

function h(tag: string, attrs: Record<string, string | boolean | undefined> = {}, ...children: Child[]) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === false) continue;
    el.setAttribute(name, value === true ? '' : value);
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    el.append(typeof child === 'number' ? String(child) : child);
  }
  return el;
}

const main = () => document.getElementById('main') as HTMLElement;

function show(title: string, ...content: Child[]) {
  const el = main();
  const nodes = content
    .filter((c): c is Node | string | number => c !== null && c !== undefined && c !== false)
    .map((c) => (typeof c === 'number' ? String(c) : c));
  el.replaceChildren(h('h1', {}, title), ...nodes);
  document.title = `${title} · pgferry`;
}

function table(caption: string, head: string[], rows: Child[][], className = '') {
  return h(
    'div',
    { class: 'scroll', role: 'region', 'aria-label': caption, tabindex: '0' },
    h(
      'table',
      { class: className },
      h('caption', {}, caption),
      h('thead', {}, h('tr', {}, ...head.map((name) => h('th', { scope: 'col' }, name)))),
      h('tbody', {}, ...rows.map((cells) => h('tr', {}, ...cells.map((cell) => h('td', {}, cell))))),
    ),
  );
}

const link = (href: string, text: string) => h('a', { href }, text);
const enc = encodeURIComponent;

// --- formats ----------------------------------------------------------------------------------

function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value < 10 && unit > 0 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
}

function duration(seconds: number): string {
  if (seconds < 60) return `${seconds < 10 ? seconds.toFixed(1) : Math.round(seconds)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ${Math.round((seconds % 3600) / 60)} min`;
  return `${Math.floor(seconds / 86400)} d ${Math.round((seconds % 86400) / 3600)} h`;
}

function age(iso: string, now = Date.now()): number {
  return Math.max(0, (now - Date.parse(iso)) / 1000);
}

const when = (iso: string) => iso.replace('T', ' ').replace(/\.\d+Z$|Z$/, ' UTC');

function badge(text: string, kind: string) {
  return h('span', { class: `badge ${kind}` }, text);
}

function verification(v: { status: string; finishedAt: string } | null) {
  if (!v) return badge('not verified', 'muted');
  return badge(`${v.status} ${when(v.finishedAt).slice(0, 10)}`, v.status === 'passed' ? 'good' : 'bad');
}

// --- charts (inline SVG) ------------------------------------------------------------------------

const SVG = 'http://www.w3.org/2000/svg';

function svg(tag: string, attrs: Record<string, string | number>, text?: string) {
  const el = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, String(value));
  if (text !== undefined) el.textContent = text;
  return el;
}

/** A line of `points` (time, value) over time, its minimum and maximum labelled. */
function chart(title: string, points: { t: number; v: number }[], format: (v: number) => string) {
  const figure = h('figure', { class: 'chart' }, h('figcaption', {}, title));
  if (points.length === 0) return figure;
  const width = 600;
  const height = 160;
  const pad = { left: 70, right: 10, top: 10, bottom: 24 };
  const ts = points.map((p) => p.t);
  const vs = points.map((p) => p.v);
  const [t0, t1] = [Math.min(...ts), Math.max(...ts)];
  const [v0, v1] = [0, Math.max(...vs, 1)];
  const x = (t: number) => pad.left + ((t - t0) / Math.max(t1 - t0, 1)) * (width - pad.left - pad.right);
  const y = (v: number) => height - pad.bottom - ((v - v0) / (v1 - v0)) * (height - pad.top - pad.bottom);
  const chartSvg = svg('svg', {
    viewBox: `0 0 ${width} ${height}`,
    role: 'img',
    'aria-label': `${title}: ${points.length} backups, from ${format(Math.min(...vs))} to ${format(Math.max(...vs))}`,
  });
  chartSvg.append(
    svg('line', { x1: pad.left, x2: width - pad.right, y1: y(0), y2: y(0), class: 'axis' }),
    svg('line', { x1: pad.left, x2: pad.left, y1: pad.top, y2: y(0), class: 'axis' }),
    svg('text', { x: pad.left - 6, y: y(v1) + 4, 'text-anchor': 'end' }, format(v1)),
    svg('text', { x: pad.left - 6, y: y(0), 'text-anchor': 'end' }, '0'),
    svg('text', { x: pad.left, y: height - 6 }, new Date(t0).toISOString().slice(0, 10)),
    svg(
      'text',
      { x: width - pad.right, y: height - 6, 'text-anchor': 'end' },
      new Date(t1).toISOString().slice(0, 10),
    ),
    svg('polyline', {
      class: 'line',
      points: points
        .slice()
        .sort((a, b) => a.t - b.t)
        .map((p) => `${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`)
        .join(' '),
    }),
  );
  if (points.length <= 60) {
    for (const p of points) chartSvg.append(svg('circle', { cx: x(p.t), cy: y(p.v), r: 3, class: 'dot' }));
  }
  figure.append(chartSvg);
  return figure;
}

// --- views ------------------------------------------------------------------------------------

type Row = import('./shapes').ConsoleBackupRow;

async function homeView() {
  const [summary, runs] = await Promise.all([read('/console/api/summary'), read('/v1/runs')]);
  // Ages from the summary's time, which may be up to a few seconds old (the server keeps it).
  const now = Date.parse(summary.now);
  const rows = summary.databases.map((db: import('./shapes').ConsoleDatabase) => {
    const newestAge = db.newest ? age(db.newest.finishedAt, now) : undefined;
    const fresh =
      newestAge === undefined
        ? badge('no backup', 'bad')
        : badge(
            `${duration(newestAge)} ago`,
            newestAge <= summary.staleAfterSeconds
              ? 'good'
              : newestAge <= 3 * summary.staleAfterSeconds
                ? 'warn'
                : 'bad',
          );
    return [
      link(`#/db/${enc(db.database)}`, db.database),
      fresh,
      db.newestVerified
        ? badge(`${duration(age(db.newestVerified.startedAt, now))} old, verified`, 'good')
        : badge('none verified', 'muted'),
      db.newest ? verification(db.newest.verification) : '-',
      db.backups,
      bytes(db.storedBytes),
      db.unreadable ? badge(`${db.unreadable} unreadable`, 'bad') : '',
    ];
  });
  show(
    'Databases',
    h(
      'p',
      { class: 'muted' },
      `Store ${summary.store}. Fresh: newest backup under ${duration(summary.staleAfterSeconds)} old.`,
    ),
    table(
      'Every database in the store',
      [
        'Database',
        'Newest backup',
        'Newest verified',
        'Newest’s verification',
        'Backups',
        'Stored',
        'Problems',
      ],
      rows,
      'databases',
    ),
    runsTable('Recent runs', runs.runs.slice(0, 10)),
  );
}

// biome-ignore lint/suspicious/noExplicitAny: a run as the API returns it
function runsTable(caption: string, runs: any[]) {
  if (runs.length === 0) return h('p', { class: 'muted' }, 'No runs yet.');
  return table(
    caption,
    ['Run', 'Kind', 'Database', 'Status', 'Started'],
    runs.map((run) => [
      link(`#/run/${enc(run.id)}`, run.id),
      run.kind,
      run.database ?? '-',
      badge(run.status, statusKind(run.status)),
      when(run.startedAt),
    ]),
  );
}

const statusKind = (status: string) =>
  status === 'succeeded' || status === 'passed' ? 'good' : status === 'running' ? 'warn' : 'bad';

async function runsView() {
  const runs = await read('/v1/runs');
  show('Runs', runsTable('Recent runs, newest first', runs.runs));
}

async function databaseView(name: string) {
  const { backups } = (await read(`/console/api/backups?database=${enc(name)}`)) as { backups: Row[] };
  const points = (pick: (r: Row) => number) =>
    backups.map((r) => ({ t: Date.parse(r.startedAt), v: pick(r) }));
  show(
    name,
    h(
      'p',
      { class: 'actions' },
      link(
        `#/start/backup?name=${enc(name)}${backups[0] ? `&source.database=${enc(backups[0].database)}` : ''}`,
        'Back up now',
      ),
      link(`#/start/verify?name=${enc(name)}&backup=latest`, 'Verify the latest'),
      link(`#/start/restore?name=${enc(name)}&backup=latest`, 'Restore the latest'),
    ),
    h(
      'div',
      { class: 'charts' },
      chart(
        'Stored size',
        points((r) => r.storedBytes),
        bytes,
      ),
      chart(
        'Duration',
        points((r) => r.durationSeconds),
        duration,
      ),
    ),
    table(
      `${backups.length} backups, newest first`,
      ['Backup', 'Started', 'Tier', 'Size', 'Duration', 'Verification', 'Origin'],
      backups.map((r) => [
        link(`#/backup/${enc(name)}/${enc(r.id)}`, r.id),
        when(r.startedAt),
        r.tier,
        bytes(r.storedBytes),
        duration(r.durationSeconds),
        verification(r.verification),
        r.origin,
      ]),
      'backups',
    ),
  );
}

function dl(pairs: [string, Child][]) {
  return h('dl', { class: 'facts' }, ...pairs.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

// biome-ignore lint/suspicious/noExplicitAny: a report as stored
function reportsList(kind: string, reports: any[]) {
  if (reports.length === 0) return h('p', { class: 'muted' }, `No ${kind} report.`);
  return table(
    `${kind} reports, newest first`,
    ['Status', 'Finished', 'Checksums', 'Tables', 'Error'],
    reports.map((r) => [
      badge(r.status, statusKind(r.status)),
      when(r.finishedAt),
      r.checks
        ? `${r.checks.checksums.filter((c: { verified: boolean }) => c.verified).length}/${r.checks.checksums.length} verified`
        : '-',
      r.checks ? `${r.checks.rowCounts.length} counted` : '-',
      r.error ?? '',
    ]),
  );
}

async function backupView(name: string, id: string) {
  const detail = await read(`/v1/backups/${enc(name)}/${enc(id)}`);
  const m = detail.manifest;
  show(
    `Backup ${m.id}`,
    h(
      'p',
      { class: 'actions' },
      link(`#/db/${enc(name)}`, `All backups of ${name}`),
      link(`#/start/verify?name=${enc(name)}&backup=${enc(m.id)}`, 'Verify'),
      link(`#/start/restore?name=${enc(name)}&backup=${enc(m.id)}`, 'Restore'),
    ),
    dl([
      ['Database', `${name} (database ${m.database})`],
      ['Source', `${m.source.user}@${m.source.host}:${m.source.port}, PostgreSQL ${m.server.version}`],
      ['Started', when(m.startedAt)],
      ['Duration', duration(m.durationSeconds)],
      [
        'Size',
        `${bytes(m.objects.reduce((s: number, o: { bytes: number }) => s + o.bytes, 0))} stored, ${bytes(m.uncompressedBytes)} uncompressed`,
      ],
      [
        'Compression',
        `${m.compression.codec}${m.compression.level === undefined ? '' : ` ${m.compression.level}`}`,
      ],
      ['Origin', m.origin ?? 'manual'],
      [
        'Retention',
        detail.retention
          ? `${detail.retention.tier ?? (detail.retention.keep ? 'kept' : 'expired')}${detail.retention.pinned ? ', pinned' : ''}`
          : '-',
      ],
      ['Tool', `pg_dump ${m.tool.pgDumpVersion}, pgferry ${m.tool.pgferryVersion}`],
    ]),
    table(
      'Objects',
      ['Key', 'Kind', 'Size', 'SHA-256'],
      m.objects.map((o: { key: string; kind: string; bytes: number; sha256: string }) => [
        o.key,
        o.kind,
        bytes(o.bytes),
        h('code', { class: 'hash' }, o.sha256),
      ]),
    ),
    table(
      `Tables (${m.tables.length})`,
      ['Table', 'Rows'],
      m.tables.map((t: { schema: string; name: string; rows: number }) => [`${t.schema}.${t.name}`, t.rows]),
    ),
    h('h2', {}, 'Verifications'),
    reportsList('verify', detail.reports.verify),
    h('h2', {}, 'Restores'),
    reportsList('restore', detail.reports.restore),
  );
}

// --- forms ------------------------------------------------------------------------------------

interface Field {
  path: string;
  label: string;
  type?: 'text' | 'number' | 'checkbox' | 'select';
  options?: string[];
  /** A select's request value for each option; an option mapped to `undefined` leaves the field out. */
  values?: Record<string, unknown>;
  value?: string;
  checked?: boolean;
  hint?: string;
}

const connection = (prefix: string, label: string): Field[] => [
  { path: `${prefix}.host`, label: `${label} host` },
  { path: `${prefix}.port`, label: `${label} port`, type: 'number', value: '5432' },
  { path: `${prefix}.user`, label: `${label} user` },
  { path: `${prefix}.database`, label: `${label} database` },
  {
    path: `${prefix}.sslmode`,
    label: `${label} sslmode`,
    type: 'select',
    options: ['prefer', 'disable', 'require', 'verify-ca', 'verify-full'],
  },
];

const FORMS: Record<
  string,
  { title: string; button: string; collection: string; fields: Field[]; note: string }
> = {
  backup: {
    button: 'Start the backup',
    title: 'Back up a database',
    collection: 'backups',
    note: 'The server connects with its own password (PGPASSWORD or ~/.pgpass where pgferry serve runs): none is asked here.',
    fields: [
      ...connection('source', 'Source'),
      { path: 'name', label: 'Catalog name', hint: 'optional: by default the database’s name' },
      {
        path: 'compression.codec',
        label: 'Compression',
        type: 'select',
        options: ['zstd', 'gzip', 'lz4', 'none'],
      },
      { path: 'withRolePasswords', label: 'Include role passwords', type: 'checkbox' },
    ],
  },
  verify: {
    button: 'Start the verification',
    title: 'Verify a backup',
    collection: 'verifications',
    note: 'Restores the backup into a throwaway server and checks every checksum and row count.',
    fields: [
      { path: 'name', label: 'Catalog name' },
      { path: 'backup', label: 'Backup', value: 'latest', hint: '“latest” or a backup id' },
    ],
  },
  restore: {
    button: 'Start the restore',
    title: 'Restore a backup',
    collection: 'restores',
    note: 'A clean restore backs up the target first, then replaces it: type the target database’s name to confirm.',
    fields: [
      { path: 'name', label: 'Catalog name' },
      { path: 'backup', label: 'Backup', value: 'latest', hint: '“latest” or a backup id' },
      ...connection('target', 'Target'),
      {
        path: 'mode',
        label: 'Mode',
        type: 'select',
        options: ['create', 'clean'],
        hint: 'create: a new database; clean: replace an existing one',
      },
      { path: 'terminateConnections', label: 'End other sessions on the target (clean)', type: 'checkbox' },
      { path: 'withGlobals', label: 'Create the roles too', type: 'checkbox' },
      { path: 'noOwner', label: 'No ownership (--no-owner)', type: 'checkbox' },
      { path: 'confirm', label: 'Type the target database’s name to confirm', hint: 'clean mode only' },
    ],
  },
  migrate: {
    button: 'Start the migration',
    title: 'Migrate a database',
    collection: 'migrations',
    note: 'Copies the source database to the target server, keeping an archive of it in the store.',
    fields: [
      ...connection('source', 'Source'),
      ...connection('target', 'Target'),
      { path: 'name', label: 'Catalog name', hint: 'optional' },
      { path: 'freezeSource', label: 'Freeze the source (read-only) during the copy', type: 'checkbox' },
      { path: 'online', label: 'Online (logical replication)', type: 'checkbox' },
      {
        path: 'schemaTest',
        label: 'Test the schema on the target first',
        type: 'select',
        options: ['when it protects something', 'always', 'never'],
        values: { 'when it protects something': undefined, always: true, never: false },
        hint: 'a scratch restore of the schema alone, before a freeze, an online setup or a replaced database',
      },
    ],
  },
};

const fieldId = (path: string) => `f-${path.replace(/\./g, '-')}`;

function fieldControl(field: Field, prefill: URLSearchParams) {
  const id = fieldId(field.path);
  const given = prefill.get(field.path) ?? undefined;
  const hintId = `${id}-hint`;
  const problemId = `${id}-problem`;
  let control: HTMLElement;
  if (field.type === 'select') {
    const select = h('select', { id, name: field.path, 'data-path': field.path }) as HTMLSelectElement;
    for (const option of field.options ?? []) select.append(h('option', { value: option }, option));
    if (given) select.value = given;
    control = select;
  } else if (field.type === 'checkbox') {
    control = h('input', {
      id,
      name: field.path,
      type: 'checkbox',
      'data-path': field.path,
      checked: given === undefined ? field.checked : given === 'true',
    });
  } else {
    control = h('input', {
      id,
      name: field.path,
      type: field.type === 'number' ? 'number' : 'text',
      inputmode: field.type === 'number' ? 'numeric' : undefined,
      value: given ?? field.value,
      'data-path': field.path,
      autocomplete: 'off',
      spellcheck: 'false',
    });
  }
  control.setAttribute('aria-describedby', `${field.hint ? `${hintId} ` : ''}${problemId}`);
  const label = h('label', { for: id }, field.label);
  return h(
    'div',
    { class: `field ${field.type === 'checkbox' ? 'check' : ''}`, 'data-field': field.path },
    ...(field.type === 'checkbox' ? [control, label] : [label, control]),
    field.hint ? h('small', { id: hintId }, field.hint) : null,
    h('p', { id: problemId, class: 'problem', 'aria-live': 'polite' }),
  );
}

/** The request body from the form's fields: dotted paths nested, numbers as numbers, empty text left out. */
function formBody(form: HTMLFormElement, fields: Field[]) {
  const body: Record<string, unknown> = {};
  let confirm: string | undefined;
  for (const field of fields) {
    const el = form.elements.namedItem(field.path) as HTMLInputElement | HTMLSelectElement | null;
    if (!el) continue;
    let value: unknown;
    if (field.type === 'checkbox') value = (el as HTMLInputElement).checked;
    else if (el.value.trim() === '') continue;
    else if (field.values) {
      value = field.values[el.value];
      if (value === undefined) continue;
    } else if (field.type === 'number') value = Number(el.value);
    else value = el.value.trim();
    if (field.path === 'confirm') {
      // Sent only with a clean restore (the field is hidden otherwise), in a header, not the body.
      const mode = form.elements.namedItem('mode') as HTMLSelectElement | null;
      if (mode?.value === 'clean') confirm = String(value);
      continue;
    }
    const keys = field.path.split('.');
    let at = body;
    for (const key of keys.slice(0, -1)) {
      at[key] ??= {};
      at = at[key] as Record<string, unknown>;
    }
    at[keys[keys.length - 1]] = value;
  }
  // Typing the target's name is the console's `force` (replace a database that has tables, or the
  // backup's own source); the safety backup is always taken (the form cannot turn it off).
  if (confirm !== undefined) body.force = true;
  return { body, confirm };
}

function startView(kind: string, prefill: URLSearchParams) {
  const spec = FORMS[kind];
  if (!spec) return show('Not found', h('p', {}, `No form ${kind}.`));
  const summary = h('div', { class: 'problems', role: 'alert' });
  const form = h(
    'form',
    { class: 'start', novalidate: true, 'aria-describedby': 'form-note' },
    ...spec.fields.map((field) => fieldControl(field, prefill)),
    h('div', { class: 'submit' }, h('button', { type: 'submit' }, spec.button)),
  ) as HTMLFormElement;
  const syncConfirm = () => {
    const mode = form.elements.namedItem('mode') as HTMLSelectElement | null;
    const confirmField = form.querySelector<HTMLElement>('[data-field="confirm"]');
    if (mode && confirmField) confirmField.hidden = mode.value !== 'clean';
  };
  form.addEventListener('change', syncConfirm);
  syncConfirm();
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    for (const p of form.querySelectorAll('.problem')) p.textContent = '';
    for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
    summary.replaceChildren();
    const { body, confirm } = formBody(form, spec.fields);
    const button = form.querySelector('button') as HTMLButtonElement;
    button.disabled = true;
    try {
      const headers: Record<string, string> =
        confirm === undefined ? {} : { 'X-Pgferry-Confirm': encodeURIComponent(confirm) };
      const answer = await api('POST', `/v1/${spec.collection}`, body, headers);
      if (answer.status === 202) {
        location.hash = `#/run/${enc(answer.body.id)}`;
        return;
      }
      showProblems(form, summary, answer.body);
    } finally {
      button.disabled = false;
    }
  });
  show(spec.title, h('p', { id: 'form-note', class: 'muted' }, spec.note), summary, form);
}

/** Each issue of a 400 next to its field (or the nearest field above it); the rest in the summary. */
function showProblems(
  form: HTMLFormElement,
  summary: HTMLElement,
  body: { message?: string; issues?: { path: string; message: string }[] },
) {
  const issues = body.issues ?? [{ path: '', message: body.message ?? 'the request was refused' }];
  const unplaced: string[] = [];
  let first: HTMLElement | undefined;
  for (const issue of issues) {
    const control = fieldFor(form, issue.path);
    if (!control) {
      unplaced.push(issue.path ? `${issue.path}: ${issue.message}` : issue.message);
      continue;
    }
    control.setAttribute('aria-invalid', 'true');
    const problem = document.getElementById(`${control.id}-problem`);
    if (problem)
      problem.textContent = problem.textContent ? `${problem.textContent}; ${issue.message}` : issue.message;
    first ??= control;
  }
  summary.replaceChildren(
    h('p', {}, `Not started: ${issues.length} problem${issues.length === 1 ? '' : 's'}.`),
    ...(unplaced.length ? [h('ul', {}, ...unplaced.map((text) => h('li', {}, text)))] : []),
  );
  first?.focus();
}

function fieldFor(form: HTMLFormElement, path: string): HTMLElement | undefined {
  if (!path) return undefined;
  const exact = form.querySelector<HTMLElement>(`[data-path="${CSS.escape(path)}"]`);
  if (exact) return exact;
  // `source` (a missing object) or `source.port.x`: the first field under it, or the one above.
  const under = form.querySelector<HTMLElement>(`[data-path^="${CSS.escape(`${path}.`)}"]`);
  if (under) return under;
  const parts = path.split('.');
  return parts.length > 1 ? fieldFor(form, parts.slice(0, -1).join('.')) : undefined;
}

// --- a run, followed ----------------------------------------------------------------------------

let polling: number | undefined;

async function runView(id: string) {
  const run = (await read(`/v1/runs/${enc(id)}`)) as {
    id: string;
    kind: string;
    status: string;
    database?: string;
    state?: string;
    startedAt: string;
    finishedAt?: string;
    progress?: {
      step: string;
      doneBytes: number;
      totalBytes?: number;
      estimated?: boolean;
      storedBytes?: number;
      lagBytes?: number;
      lagSeconds?: number;
      database?: string;
    };
    // biome-ignore lint/suspicious/noExplicitAny: the stored manifest or report
    result?: any;
    error?: { error: string; cause: string };
    cleanup?: RunCleanup;
  };
  const facts: [string, Child][] = [
    ['Kind', run.kind],
    ['Database', run.database ?? '-'],
    ['Status', badge(run.status, statusKind(run.status))],
    ['Step', run.state ?? '-'],
    ['Started', when(run.startedAt)],
    ['Took', duration(age(run.startedAt, run.finishedAt ? Date.parse(run.finishedAt) : Date.now()))],
  ];
  const parts: Child[] = [h('div', { class: 'run', 'data-status': run.status }, dl(facts))];
  const p = run.progress;
  if (run.status === 'running' && p) {
    const total = p.totalBytes;
    parts.push(
      h(
        'div',
        { class: 'progress' },
        h(
          'label',
          { for: 'run-progress' },
          `${p.step}${p.database ? ` of ${p.database}` : ''}: ${bytes(p.doneBytes)}${total ? ` of ${p.estimated ? '~' : ''}${bytes(total)}` : ''}${p.storedBytes !== undefined ? `, ${bytes(p.storedBytes)} stored` : ''}${p.lagBytes !== undefined ? `, ${bytes(p.lagBytes)} behind` : ''}`,
        ),
        h('progress', {
          id: 'run-progress',
          max: total ? String(total) : undefined,
          value: total ? String(Math.min(p.doneBytes, total)) : undefined,
        }),
      ),
    );
  }
  if (run.status === 'running') {
    const cancel = h('button', { type: 'button', class: 'danger' }, 'Cancel the run');
    cancel.addEventListener('click', async () => {
      await api('DELETE', `/v1/runs/${enc(id)}`);
      void route();
    });
    parts.push(h('p', {}, cancel));
  }
  if (run.error)
    parts.push(h('p', { class: 'problem', role: 'alert' }, `${run.error.error}: ${run.error.cause}`));
  if (run.cleanup) parts.push(cleanupView(run.cleanup));
  if (run.result) parts.push(resultView(run.kind, run.result));
  show(`Run ${run.id}`, ...parts);
  if (run.status === 'running') {
    polling = window.setTimeout(() => {
      if (location.hash === `#/run/${enc(id)}`) void runView(id).catch(fail);
    }, 1000);
  }
}

/** What a cleanup that ran apart from the run did and left (the API's `RunCleanup`). */
interface RunCleanup {
  notes: string[];
  left: string[];
  error?: { error: string; cause: string };
}

/**
 * A stopped run's cleanup (on AWS the announcer's, after a cancelled or timed-out execution): what
 * it did, then what it left — each line marked, saying how to remove it — and its own failure.
 */
function cleanupView(cleanup: RunCleanup) {
  const box = h(
    'section',
    { class: 'cleanup', 'aria-label': 'Cleanup' },
    h('h2', {}, 'Cleanup after the stop'),
  );
  box.append(
    cleanup.notes.length > 0
      ? h(
          'ul',
          { class: 'cleanup-done' },
          ...cleanup.notes.map((note) => h('li', {}, badge('done', 'good'), ' ', note)),
        )
      : h('p', { class: 'muted' }, 'It had nothing to remove.'),
  );
  if (cleanup.left.length > 0) {
    box.append(
      h(
        'p',
        { class: 'problem', role: 'alert' },
        `Left behind (${cleanup.left.length}): remove each as it says.`,
      ),
      h(
        'ul',
        { class: 'cleanup-left' },
        ...cleanup.left.map((line) => h('li', {}, badge('left', 'bad'), ' ', line)),
      ),
    );
  }
  if (cleanup.error) {
    box.append(
      h(
        'p',
        { class: 'problem cleanup-error', role: 'alert' },
        `The cleanup failed before its end (${cleanup.error.error}: ${cleanup.error.cause}): what it did not reach is not listed.`,
      ),
    );
  }
  return box;
}

// biome-ignore lint/suspicious/noExplicitAny: the stored manifest or report
function resultView(kind: string, result: any) {
  const box = h('section', { class: 'report', 'aria-label': 'Report' }, h('h2', {}, 'Report'));
  if (kind === 'backup') {
    const name = result.name ?? result.database;
    box.append(
      dl([
        ['Backup', link(`#/backup/${enc(name)}/${enc(result.id)}`, result.id)],
        ['Stored', bytes(result.objects.reduce((s: number, o: { bytes: number }) => s + o.bytes, 0))],
        ['Tables', result.tables.length],
        ['Took', duration(result.durationSeconds)],
      ]),
    );
  } else {
    const facts: [string, Child][] = [
      ['Result', badge(result.status ?? 'done', statusKind(result.status ?? 'succeeded'))],
    ];
    if (result.backupId && result.database)
      facts.push([
        'Backup',
        link(`#/backup/${enc(result.database)}/${enc(result.backupId)}`, result.backupId),
      ]);
    if (result.target)
      facts.push(['Target', `${result.target.database} on ${result.target.host}:${result.target.port}`]);
    if (result.checks) {
      const sums = result.checks.checksums as { verified: boolean }[];
      const rows = result.checks.rowCounts as { rows: number; restoredRows: number }[];
      facts.push(['Checksums', `${sums.filter((c) => c.verified).length}/${sums.length} verified`]);
      facts.push([
        'Row counts',
        `${rows.filter((r) => r.rows === r.restoredRows).length}/${rows.length} tables match`,
      ]);
    }
    if (result.safetyBackupId)
      facts.push(['Safety backup', `${result.safetyBackupId} (of the target, before it was replaced)`]);
    if (result.error) facts.push(['Error', result.error]);
    box.append(dl(facts));
  }
  box.append(
    h(
      'details',
      {},
      h('summary', {}, 'The whole report (JSON)'),
      h('pre', {}, JSON.stringify(result, null, 2)),
    ),
  );
  return box;
}

// --- routing ------------------------------------------------------------------------------------

function fail(err: unknown) {
  if (err instanceof SignedOut) {
    show('Signed out', h('p', {}, 'The session has ended. ', link('/', 'Sign in again'), '.'));
    return;
  }
  show(
    'Something went wrong',
    h('p', { class: 'problem', role: 'alert' }, err instanceof Error ? err.message : String(err)),
  );
}

async function route() {
  window.clearTimeout(polling);
  const [pathPart, query = ''] = location.hash.replace(/^#/, '').split('?');
  const parts = pathPart.split('/').filter(Boolean).map(decodeURIComponent);
  for (const a of document.querySelectorAll('nav a')) {
    if (a.getAttribute('href') === `#${pathPart || '/'}`) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  try {
    if (parts.length === 0) await homeView();
    else if (parts[0] === 'db' && parts[1]) await databaseView(parts[1]);
    else if (parts[0] === 'backup' && parts[1] && parts[2]) await backupView(parts[1], parts[2]);
    else if (parts[0] === 'start' && parts[1]) startView(parts[1], new URLSearchParams(query));
    else if (parts[0] === 'run' && parts[1]) await runView(parts[1]);
    else if (parts[0] === 'runs') await runsView();
    else show('Not found', h('p', {}, link('#/', 'The databases')));
    // The first view drawn: a mark the tests read (with the first paint) to report the page's speed.
    if (performance.getEntriesByName('pgferry:view').length === 0) performance.mark('pgferry:view');
  } catch (err) {
    fail(err);
  }
}

window.addEventListener('hashchange', () => {
  void route();
  main().focus();
});
void route();

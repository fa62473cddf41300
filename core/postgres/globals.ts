/**
 * Applying a backup's roles (`pg_dumpall --globals-only` output) to a target server: roles that
 * do not exist are created; existing roles are reported and never altered; tablespaces are left
 * out (their directories belong to the target's host).
 */

const IDENT = '("(?:[^"]|"")*"|[A-Za-z_][A-Za-z0-9_$]*)';
const ROLE_STATEMENT = new RegExp(`^(CREATE|ALTER) ROLE ${IDENT}[ ;]`);
const TABLESPACE_STATEMENT = /^(CREATE|ALTER) TABLESPACE /;

export function unquoteIdent(ident: string): string {
  return ident.startsWith('"') ? ident.slice(1, -1).replace(/""/g, '"') : ident.toLowerCase();
}

export interface GlobalsPlan {
  sql: string;
  created: string[];
  skippedExisting: string[];
  /**
   * The created roles that can log in (`LOGIN`) but get no password: the globals were dumped
   * without passwords (`--no-role-passwords`), or the role had none. They cannot log in with a
   * password until one is set (`ALTER ROLE … PASSWORD`).
   */
  createdWithoutPassword: string[];
}

/** The statements to run so that the roles in `globalsSql` exist, without touching `existingRoles`. */
export function planGlobals(globalsSql: string, existingRoles: ReadonlySet<string>): GlobalsPlan {
  const created = new Set<string>();
  const skipped = new Set<string>();
  const login = new Set<string>();
  const withPassword = new Set<string>();
  const kept: string[] = [];
  for (const line of globalsSql.split('\n')) {
    const role = ROLE_STATEMENT.exec(line);
    if (role) {
      const name = unquoteIdent(role[2]);
      if (existingRoles.has(name)) {
        skipped.add(name);
        continue;
      }
      created.add(name);
      // `ALTER ROLE name WITH … LOGIN … PASSWORD '…';`: keywords after the name (a password hash
      // has no spaces, and the name is past).
      const attributes = line.slice(role[0].length - 1).split(/[\s;]+/);
      if (attributes.includes('LOGIN')) login.add(name);
      if (attributes.includes('PASSWORD')) withPassword.add(name);
    }
    if (TABLESPACE_STATEMENT.test(line)) continue;
    kept.push(line);
  }
  return {
    sql: kept.join('\n'),
    created: [...created],
    skippedExisting: [...skipped],
    createdWithoutPassword: [...created].filter((name) => login.has(name) && !withPassword.has(name)),
  };
}

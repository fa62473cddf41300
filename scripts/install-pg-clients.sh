#!/usr/bin/env bash
# Make newer PostgreSQL client tools (pg_dump, pg_restore, pg_dumpall, psql)
# available on a Debian bookworm machine without touching the system.
#
# Usage: scripts/install-pg-clients.sh [MAJOR...]      (default: 17)
#
# Result: <repo>/.cache/pg-clients/<MAJOR>/bin/{pg_dump,pg_restore,pg_dumpall,psql}
#
# How it works: bookworm only ships PostgreSQL 15 clients, so the packages are
# taken from Debian trixie (same mirror host as the system's sources). apt is
# run with a PRIVATE sources list / lists dir / cache dir, so the system's apt
# configuration and state are left alone. Trixie binaries need glibc >= 2.38,
# so they are run through trixie's own dynamic loader with --library-path
# pointing at the extracted trixie libraries; small wrapper scripts in bin/
# do that. The packages are extracted to <MAJOR>/root; in
# <MAJOR>/root/usr/lib/postgresql/<MAJOR>/bin the ELF files are renamed to
# *.elf and replaced by the same kind of wrapper, because pg_dumpall runs the
# pg_dump found next to its own argv[0] (see install_major below).
#
# Idempotent: if <MAJOR>/bin/pg_dump --version already reports MAJOR, nothing
# is downloaded. Needs root for apt-get download / update (private dirs only).
#
# Environment overrides:
#   PG_CLIENTS_DEBIAN_MIRROR  Debian mirror URL (default: taken from the
#                             system's apt sources, e.g. http://deb.debian.org/debian)
#   PG_CLIENTS_SUITE          Debian suite to take packages from (default: trixie)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
CACHE_ROOT="$REPO_ROOT/.cache/pg-clients"
SUITE="${PG_CLIENTS_SUITE:-trixie}"
TOOLS=(pg_dump pg_restore pg_dumpall psql)

# Runtime closure of postgresql-client-<major> in trixie (libc6 provides the
# loader). Package names are trixie's (t64 transition names etc.).
LIB_PKGS=(
  libc6 libpq5 libldap2 libsasl2-2 libsasl2-modules-db libgssapi-krb5-2
  libkrb5-3 libk5crypto3 libkrb5support0 libkeyutils1 libcom-err2 libssl3t64
  libzstd1 liblz4-1 zlib1g libreadline8t64 libtinfo6 libgnutls30t64 libidn2-0
  libunistring5 libtasn1-6 libnettle8t64 libhogweed6t64 libgmp10 libp11-kit0
  libffi8 libdb5.3t64 libselinux1 libpcre2-8-0
)

log() { echo "install-pg-clients: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

if [ "$#" -eq 0 ]; then
  set -- 17
fi

case "$(uname -m)" in
  x86_64) MULTIARCH=x86_64-linux-gnu; LOADER_NAME=ld-linux-x86-64.so.2 ;;
  aarch64) MULTIARCH=aarch64-linux-gnu; LOADER_NAME=ld-linux-aarch64.so.1 ;;
  *) die "unsupported architecture $(uname -m)" ;;
esac

# Prints "pg_dump (PostgreSQL) X.Y" if <dir>/bin/pg_dump is a working client of
# the requested major, otherwise fails.
installed_version() {
  local dir="$1" major="$2" out
  [ -x "$dir/bin/pg_dump" ] || return 1
  out="$("$dir/bin/pg_dump" --version 2>/dev/null)" || return 1
  case "$out" in
    "pg_dump (PostgreSQL) $major."*) printf '%s\n' "$out" ;;
    *) return 1 ;;
  esac
}

# Debian mirror URL used by the system (first enabled "deb" source that serves
# the system's codename from a non-security archive).
detect_mirror() {
  if [ -n "${PG_CLIENTS_DEBIAN_MIRROR:-}" ]; then
    printf '%s\n' "${PG_CLIENTS_DEBIAN_MIRROR%/}"
    return
  fi
  local codename="" url="" f
  codename="$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")" || true
  [ -n "$codename" ] || codename=bookworm
  local files=()
  [ -f /etc/apt/sources.list ] && files+=(/etc/apt/sources.list)
  for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] && files+=("$f")
  done
  for f in "${files[@]}"; do
    case "$f" in
      *.sources)
        # deb822: paragraphs with Types/URIs/Suites/Enabled fields.
        url="$(awk -v cn="$codename" '
          function flush() {
            if (types ~ /(^| )deb( |$)/ && enabled != "no" && (" " suites " ") ~ (" " cn " ")) {
              n = split(uris, u, " ")
              for (i = 1; i <= n; i++) if (u[i] !~ /security/ && !found) { print u[i]; found = 1 }
            }
            types = ""; uris = ""; suites = ""; enabled = ""
          }
          /^[ \t]*#/ { next }
          /^[ \t]*$/ { flush(); next }
          tolower($1) == "types:"   { $1 = ""; types = $0 }
          tolower($1) == "uris:"    { $1 = ""; uris = $0 }
          tolower($1) == "suites:"  { $1 = ""; suites = $0 }
          tolower($1) == "enabled:" { enabled = tolower($2) }
          END { flush() }
        ' "$f")" ;;
      *)
        # one-line format: deb [opts] URL suite components...
        url="$(awk -v cn="$codename" '
          $1 != "deb" { next }
          { i = 2; if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ } }
          $(i + 1) == cn && $i !~ /security/ { print $i; exit }
        ' "$f")" ;;
    esac
    if [ -n "$url" ]; then
      printf '%s\n' "${url%/}"
      return
    fi
  done
  log "could not find the system's Debian mirror in /etc/apt; using http://deb.debian.org/debian"
  echo "http://deb.debian.org/debian"
}

APT_READY=""
LOCKED=""
STAGE=""

# On exit (success or failure): drop a half-built staging dir and the private
# apt lists (~20 MB, only needed while installing).
cleanup() {
  [ -z "$STAGE" ] || rm -rf "$STAGE"
  [ -z "$APT_READY" ] || rm -rf "$APT_DIR"
}
trap cleanup EXIT
APT_DIR="$CACHE_ROOT/.apt"
APT_OPTS=()

# Private apt setup + update (once per script run).
prepare_apt() {
  [ -z "$APT_READY" ] || return 0
  command -v apt-get >/dev/null || die "apt-get not found"
  command -v dpkg >/dev/null || die "dpkg not found"
  [ "$(id -u)" -eq 0 ] || die "must run as root (apt-get update/download with private lists)"

  local mirror keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  mirror="$(detect_mirror)"
  [ -f "$keyring" ] || die "$keyring missing (install debian-archive-keyring)"
  mkdir -p "$APT_DIR/lists/partial" "$APT_DIR/cache/archives/partial"
  printf 'deb [signed-by=%s] %s %s main\n' "$keyring" "$mirror" "$SUITE" > "$APT_DIR/sources.list"
  APT_OPTS=(
    -o "Dir::Etc::SourceList=$APT_DIR/sources.list"
    -o "Dir::Etc::SourceParts=/dev/null"
    -o "Dir::Etc::Preferences=/dev/null"
    -o "Dir::Etc::PreferencesParts=/dev/null"
    -o "Dir::State::Lists=$APT_DIR/lists"
    -o "Dir::Cache=$APT_DIR/cache"
    -o "Dir::Cache::archives=$APT_DIR/cache/archives"
    -o "Acquire::Languages=none"
    -o "APT::Sandbox::User=root"
  )
  log "apt-get update (private lists, $mirror $SUITE main)"
  apt-get -q "${APT_OPTS[@]}" update >&2 || die "apt-get update of $SUITE failed"
  APT_READY=1
}

# Wrapper that runs an ELF from the extracted root via its own loader.
# The wrapper locates the root relative to its own (symlink-resolved) path,
# so the cache can be moved/copied as a whole.
# --argv0 makes the program see <pgbin>/<name> (the sibling wrapper) as its
# argv[0]: messages say "pg_dump:" rather than "pg_dump.elf:", and pg_dumpall
# (which locates pg_dump via argv[0]) looks in <pgbin>, where pg_dump is the
# loader wrapper.
write_wrapper() {
  local out="$1" rel_root="$2" elf="$3"
  cat > "$out" <<EOF
#!/bin/sh
# Generated by scripts/install-pg-clients.sh: run $(basename "${elf%.elf}") from Debian $SUITE via $SUITE's own loader.
here=\$(dirname "\$(readlink -f "\$0")")
r=\$(cd "\$here/$rel_root" && pwd)
exec "\$r/usr/lib/$MULTIARCH/$LOADER_NAME" --library-path "\$r/usr/lib/$MULTIARCH:\$r/lib/$MULTIARCH" --argv0 "\$r/${elf%.elf}" "\$r/$elf" "\$@"
EOF
  chmod 0755 "$out"
}

install_major() {
  local major="$1" dest="$CACHE_ROOT/$1" ver
  case "$major" in ''|*[!0-9]*) die "invalid major version '$major'" ;; esac

  if ver="$(installed_version "$dest" "$major")"; then
    echo "pg clients $major: $dest/bin ($ver)"
    return 0
  fi

  # Serialize concurrent runs (e.g. parallel test workers), then re-check.
  if [ -z "$LOCKED" ]; then
    mkdir -p "$CACHE_ROOT"
    exec 9>"$CACHE_ROOT/.lock"
    flock 9
    LOCKED=1
    if ver="$(installed_version "$dest" "$major")"; then
      echo "pg clients $major: $dest/bin ($ver)"
      return 0
    fi
  fi

  prepare_apt
  local stage="$CACHE_ROOT/.stage-$major.$$"
  STAGE="$stage"
  rm -rf "$stage"
  mkdir -p "$stage/debs" "$stage/root" "$stage/bin"

  local pkgs=("postgresql-client-$major" postgresql-client-common "${LIB_PKGS[@]}") p spec=()
  for p in "${pkgs[@]}"; do spec+=("$p/$SUITE"); done
  log "downloading ${#pkgs[@]} packages from $SUITE"
  (cd "$stage/debs" && apt-get -q "${APT_OPTS[@]}" download "${spec[@]}" >&2) \
    || die "apt-get download failed (does $SUITE have postgresql-client-$major?)"

  local deb
  for deb in "$stage"/debs/*.deb; do
    dpkg -x "$deb" "$stage/root"
  done

  local root="$stage/root" pgbin="usr/lib/postgresql/$major/bin"
  local loader="$root/usr/lib/$MULTIARCH/$LOADER_NAME"
  [ -e "$loader" ] || die "loader $LOADER_NAME not found in extracted libc6"
  [ -x "$root/$pgbin/pg_dump" ] || die "pg_dump not found in postgresql-client-$major"

  # pg_dumpall locates pg_dump in the directory of its own executable (derived
  # from argv[0]) and runs it directly, checking "pg_dump -V". Executing the
  # trixie ELF directly fails on bookworm (glibc too old), so rename every ELF
  # in the pg bin dir to <name>.elf and put a loader wrapper under the
  # original name. Then "<pgbin>/pg_dump" works whoever runs it.
  local f name
  for f in "$root/$pgbin"/*; do
    [ -f "$f" ] && [ ! -L "$f" ] || continue
    name="$(basename "$f")"
    case "$name" in *.elf) continue ;; esac
    if [ "$(head -c 4 "$f" | od -An -c | tr -d ' ')" = '177ELF' ]; then
      mv "$f" "$f.elf"
      write_wrapper "$f" "../../../../.." "$pgbin/$name.elf"
    fi
  done

  # Public wrappers in <major>/bin run the ELFs the same way (argv[0] is set to
  # <pgbin>/<name>, so pg_dumpall finds the <pgbin>/pg_dump wrapper).
  for name in "${TOOLS[@]}"; do
    [ -f "$root/$pgbin/$name.elf" ] || die "$name missing from postgresql-client-$major"
    write_wrapper "$stage/bin/$name" "../root" "$pgbin/$name.elf"
  done

  rm -rf "$stage/debs"
  # Readable/executable for non-root users (tests run clients as postgres).
  chmod -R a+rX "$stage"

  # Sanity check: all shared libs resolve, and versions match.
  local missing
  for name in "${TOOLS[@]}"; do
    missing="$("$loader" --library-path "$root/usr/lib/$MULTIARCH:$root/lib/$MULTIARCH" \
      --list "$root/$pgbin/$name.elf" 2>&1 | grep 'not found' || true)"
    [ -z "$missing" ] || die "$name: unresolved libraries: $missing"
    case "$("$stage/bin/$name" --version 2>&1 || true)" in
      *"(PostgreSQL) $major."*) ;;
      *) die "$name --version did not report $major" ;;
    esac
  done

  # Swap into place.
  rm -rf "$dest.old"
  [ ! -e "$dest" ] || mv "$dest" "$dest.old"
  mv "$stage" "$dest"
  rm -rf "$dest.old"
  STAGE=""
  chmod a+rx "$REPO_ROOT/.cache" "$CACHE_ROOT" 2>/dev/null || true

  ver="$(installed_version "$dest" "$major")" || die "installed pg_dump $major does not run"
  echo "pg clients $major: $dest/bin ($ver)"
}

for major in "$@"; do
  install_major "$major"
done

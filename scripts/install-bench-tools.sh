#!/usr/bin/env bash
# `npm run bench`'s pre-step: the benchmark's peers that are not npm packages. pgcopydb comes from
# Debian's archive; without root or apt the benchmark still runs and reports the case as skipped.
set -u
if command -v pgcopydb >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "bench: pgcopydb is not installed and cannot be installed here (needs root and apt-get); its case will be skipped" >&2
  exit 0
fi
echo "bench: installing pgcopydb (apt-get install pgcopydb)" >&2
if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q pgcopydb >/dev/null 2>&1; then
  apt-get update -q >/dev/null 2>&1
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q pgcopydb >/dev/null 2>&1 ||
    echo "bench: apt-get install pgcopydb failed; its case will be skipped" >&2
fi
exit 0

#!/usr/bin/env bash
# The figures of docs/import-export.md "Measured": a release registry on PostgreSQL, 10,000
# experts imported from one XLSX file with supctl and the draw pool of 10,000 streamed, then
# 100,000 in all, the registry restarted (so its peak memory is the stream's own) and the pool
# streamed again (three times: the first read warms the caches).
# Needs PostgreSQL (TEST_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/postgres, a
# role that may create databases) and GNU time. Creates and drops its own database.
set -euo pipefail
cd "$(dirname "$0")/.."

admin_url=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
db=measure_import_$$
db_url=${admin_url%/*}/$db
work=$(mktemp -d)
port=${MEASURE_PORT:-50151}
registry_pid=

cleanup() {
  if [[ -n $registry_pid ]]; then kill -TERM "$registry_pid" 2>/dev/null || true; wait "$registry_pid" 2>/dev/null || true; fi
  psql "$admin_url" -qc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

if [[ -z ${MEASURE_NO_BUILD:-} ]]; then
  cargo build --release -p supervision-registry --bin registry --example import_load
  cargo build --release -p supctl
fi
bin=${CARGO_TARGET_DIR:-target}/release

psql "$admin_url" -qc "CREATE DATABASE $db" >/dev/null
"$bin/supctl" keys init --dir "$work/keys" >/dev/null
supctl() { "$bin/supctl" --private-key-file "$work/keys/token-private.pem" --registry "http://127.0.0.1:$port" "$@"; }

start_registry() {
  env -u METRICS_LISTEN "$bin/registry" --listen "127.0.0.1:$port" --database-url "$db_url" \
    --jwt-public-key-file "$work/keys/token-public.pem" --personal-data-key-file "$work/keys/personal-data.key" \
    >>"$work/registry.log" 2>&1 &
  registry_pid=$!
  for _ in $(seq 1 120); do supctl health --service registry >/dev/null 2>&1 && break; sleep 0.5; done
  supctl health --service registry >/dev/null
}
start_registry

peak() { awk '/VmHWM/ {printf "%.0f MiB", $2/1024}' "/proc/$registry_pid/status"; }

echo "== generating files"
for i in $(seq 0 9); do
  "$bin/examples/import_load" file --first $((i * 10000)) --count 10000 --out "$work/experts-$i.xlsx"
done

echo "== importing 10,000 experts from XLSX (registry peak RSS before: $(peak))"
/usr/bin/time -f "supctl: %e s wall, peak RSS %M KiB" "$bin/supctl" --private-key-file "$work/keys/token-private.pem" \
  --registry "http://127.0.0.1:$port" expert import "$work/experts-0.xlsx" 2>&1 | grep -v "^checked" || true
echo "registry peak RSS after the import: $(peak)"

institution=$(supctl --output json institution create --kind technical-school --name 江门市测量技工学校 \
  --credit-code 91110000600037341L --county 440703 | sed -n 's/.*"id": "\(ins_[^"]*\)".*/\1/p')
token=$(supctl token issue --role AUDITOR --subject measure-auditor)
pool() { "$bin/examples/import_load" pool --endpoint "http://127.0.0.1:$port" --token "$token" --institution "$institution"; }
echo "== streaming the pool of 10,000"
for _ in 1 2 3; do pool; done

echo "== importing 90,000 more"
for i in $(seq 1 9); do
  start=$(date +%s.%N)
  supctl expert import --quiet "$work/experts-$i.xlsx" >/dev/null
  echo "file $i: $(echo "$(date +%s.%N) - $start" | bc) s"
done
echo "registry peak RSS after 100,000: $(peak)"

# A fresh registry process, so that its peak below is the pool stream's and not the imports'.
kill -TERM "$registry_pid"; wait "$registry_pid" 2>/dev/null || true
start_registry
echo "registry restarted: peak RSS $(peak)"

echo "== streaming the pool of 100,000"
/usr/bin/time -f "pool client: %e s wall, peak RSS %M KiB" \
  "$bin/examples/import_load" pool --endpoint "http://127.0.0.1:$port" --token "$token" --institution "$institution"
pool
pool
echo "registry peak RSS after the pool: $(peak)"

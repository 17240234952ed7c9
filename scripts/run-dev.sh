#!/usr/bin/env bash
# `make run`: the system on this machine. SQLite files, a development token key pair and the
# registry's personal-data key under ./data, in-process locks; waits until every service is SERVING, prints what to try, and stops
# everything on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

# The services that exist so far, with their ports (ARCHITECTURE.md).
services=(registry recruitment dispatch finance)
declare -A port=([registry]=50051 [recruitment]=50052 [dispatch]=50053 [finance]=50054)
declare -A metrics=([registry]=9101 [recruitment]=9102 [dispatch]=9103 [finance]=9104)

# The default members only: the test crate would turn on the test clock.
cargo build --bins
bin=${CARGO_TARGET_DIR:-target}/debug
mkdir -p data
"$bin/supctl" keys init --dir data/dev-keys >/dev/null

export JWT_PUBLIC_KEY_FILE=data/dev-keys/token-public.pem
# Each service's own SERVICE token (subject svc:<name>), for its calls to the others.
for svc in "${services[@]}"; do
  "$bin/supctl" --private-key-file data/dev-keys/token-private.pem token issue \
    --role SERVICE --subject "svc:$svc" --hours 720 > "data/dev-keys/$svc.token"
done
# The calls between services of ARCHITECTURE.md's table.
peers="REGISTRY_ENDPOINT=http://127.0.0.1:50051 DISPATCH_ENDPOINT=http://127.0.0.1:50053 FINANCE_ENDPOINT=http://127.0.0.1:50054"
pids=()
stop() {
  trap - INT TERM EXIT
  echo; echo "stopping..."
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait
}
trap stop INT TERM EXIT

# Settings only some services take: the registry and recruitment encrypt experts' and applicants'
# personal data with the deployment's key.
declare -A own=([registry]="PERSONAL_DATA_KEY_FILE=data/dev-keys/personal-data.key"
                [recruitment]="PERSONAL_DATA_KEY_FILE=data/dev-keys/personal-data.key")

for svc in "${services[@]}"; do
  upper=${svc^^}
  env "${upper}_LISTEN=127.0.0.1:${port[$svc]}" "${upper}_DATABASE_URL=sqlite://data/${svc}.db" \
    "METRICS_LISTEN=127.0.0.1:${metrics[$svc]}" "SERVICE_TOKEN_FILE=data/dev-keys/$svc.token" $peers ${own[$svc]:-} \
    "$bin/$svc" > "data/${svc}.log" 2>&1 &
  pids+=($!)
done

only=()
for svc in "${services[@]}"; do only+=(--service "$svc"); done
for _ in $(seq 1 60); do
  if "$bin/supctl" health "${only[@]}" >/dev/null 2>&1; then break; fi
  sleep 0.5
done
"$bin/supctl" health "${only[@]}" || { echo "a service did not become SERVING; see data/*.log"; exit 1; }

cat <<TXT

Running: ${services[*]} (logs in data/*.log). Try:

  $bin/supctl institution create --kind vocational-training-school --name 江门市示例职业培训学校 \\
      --credit-code 91350100M000100Y43 --county 440703
  $bin/supctl institution list
  $bin/supctl token issue --role COUNTY_OPERATOR --bureau 440705 --subject xinhui-op1
  $bin/supctl audit verify --service registry
  grpcurl -plaintext 127.0.0.1:50052 list      # reflection on every service
  curl -s 127.0.0.1:9101/metrics              # calendar coverage, edition days left, outbox

supctl signs itself a short-lived CITY_ADMIN token with data/dev-keys/token-private.pem.
Ctrl-C stops everything.
TXT
wait

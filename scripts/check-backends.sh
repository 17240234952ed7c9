#!/usr/bin/env bash
# Fails with instructions when the PostgreSQL or Redis that the tests use is not reachable.
# `make test` runs this first so a missing backend is an error, never a silent skip.
set -u
pg_url="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
redis_url="${TEST_REDIS_URL:-redis://127.0.0.1:6379}"

hostport() { # prints "host port" of a URL like scheme://[user[:pw]@]host[:port][/...]
  local rest="${1#*://}"; rest="${rest#*@}"; rest="${rest%%/*}"; rest="${rest%%\?*}"
  local host="${rest%%:*}" port="${rest##*:}"
  [ "$port" = "$rest" ] && port="$2"
  echo "$host $port"
}

ok=1
read -r pg_host pg_port < <(hostport "$pg_url" 5432)
if ! (exec 3<>"/dev/tcp/$pg_host/$pg_port") 2>/dev/null; then
  echo "error: PostgreSQL is not reachable at $pg_host:$pg_port (TEST_DATABASE_URL)." >&2
  echo "       start it: pg_ctlcluster \$(ls /etc/postgresql) main start   (or run .ci/run, which installs and starts it)" >&2
  ok=0
fi
read -r redis_host redis_port < <(hostport "$redis_url" 6379)
if ! (exec 3<>"/dev/tcp/$redis_host/$redis_port") 2>/dev/null; then
  echo "error: Redis is not reachable at $redis_host:$redis_port (TEST_REDIS_URL)." >&2
  echo "       start it: redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no" >&2
  ok=0
fi
[ "$ok" = 1 ] || exit 1

#!/usr/bin/env bash
# Lints and format-checks the contracts with buf (npm @bufbuild/buf, installed once into a cache
# directory; runs offline after that).
set -euo pipefail
cd "$(dirname "$0")/.."
BUF_VERSION=1.75.0
cache="${XDG_CACHE_HOME:-$HOME/.cache}/supervision-buf-$BUF_VERSION"
buf="$cache/node_modules/.bin/buf"
if [ ! -x "$buf" ]; then
  mkdir -p "$cache"
  (cd "$cache" && npm init -y >/dev/null && npm install --no-audit --no-fund --silent "@bufbuild/buf@$BUF_VERSION")
fi
"$buf" lint
"$buf" format --diff --exit-code
echo "buf lint and format: clean"

#!/usr/bin/env bash
# Fails if a service binary built the way the image and `make run` build it would accept a test
# clock: the kit's `test-clock` feature must only ever be on for the test crate.
set -euo pipefail
cd "$(dirname "$0")/.."
for pkg in supervision-registry supervision-recruitment supervision-dispatch supervision-finance supctl; do
  if cargo tree --locked -e features,normal,build -p "$pkg" --prefix none 2>/dev/null | grep -q 'supervision-kit feature "test-clock"'; then
    echo "error: $pkg is built with the kit's test-clock feature" >&2
    exit 1
  fi
done
# And the image build's package set, resolved together.
if cargo tree --locked -e features,normal,build -p supervision-registry -p supervision-recruitment -p supervision-dispatch \
     -p supervision-finance -p supctl --prefix none 2>/dev/null | grep -q 'supervision-kit feature "test-clock"'; then
  echo "error: the image's binaries are built with the kit's test-clock feature" >&2
  exit 1
fi
echo "no production binary takes a test clock"

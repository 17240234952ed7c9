#!/usr/bin/env bash
# Validates the deployment offline: renders each kustomize overlay with `kubectl kustomize`, then
#   - kubernetes-validate --strict against Kubernetes 1.30 (the cluster version we target),
#   - checkov (kubernetes framework): no failed check; every skip is a `checkov.io/skipN`
#     annotation in the manifests with its reason, never a command-line skip list,
#   - deploy/check_manifests.py: the NetworkPolicies allow exactly ARCHITECTURE.md's calls, gRPC
#     probes on the plaintext health port, hardening, prod's replicas, HPAs and PDBs,
# and checkov (dockerfile framework) on deploy/docker/Dockerfile.
#
# The Python tools live in a venv under the cache directory, created on first use (needs PyPI)
# and reused while the pinned versions stay the same; after that the script needs no network.
# Idempotent: it writes nothing but the venv and a temporary directory it removes.
set -euo pipefail
cd "$(dirname "$0")/.."

K8S_VERSION=1.30.0
PINS=(kubernetes-validate==1.37.0 checkov==3.3.30)
VENV=${SUPERVISION_DEPLOY_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/supervision-deploy-venv}
OVERLAYS=(dev prod)

step() { printf -- '-- %s\n' "$*"; }

if ! command -v kubectl >/dev/null 2>&1; then
  echo "deploy/check.sh: kubectl is not installed (it renders the overlays with its built-in kustomize)" >&2
  exit 1
fi
step "$(kubectl version --client 2>/dev/null | tr '\n' ' ')"

# --- the tools --------------------------------------------------------------------------------
if [ "$(cat "$VENV/.pins" 2>/dev/null)" != "${PINS[*]}" ] || ! "$VENV/bin/python" -c 'import yaml' 2>/dev/null; then
  step "installing ${PINS[*]} into $VENV"
  if ! python3 -c 'import ensurepip, venv' 2>/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv
  fi
  # The pins file is written last: a venv without it (an interrupted install) is rebuilt.
  rm -rf "$VENV"
  mkdir -p "$(dirname "$VENV")"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check --no-input "${PINS[@]}"
  printf '%s' "${PINS[*]}" > "$VENV/.pins"
fi
PY=$VENV/bin/python
# checkov: no calls home, no update check.
export BC_SKIP_MAPPING=TRUE CKV_SKIP_PACKAGE_UPDATE_CHECK=TRUE LOG_LEVEL=WARNING

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# --- each overlay -----------------------------------------------------------------------------
for overlay in "${OVERLAYS[@]}"; do
  dir=$work/$overlay
  mkdir -p "$dir"
  step "kubectl kustomize deploy/k8s/overlays/$overlay"
  kubectl kustomize "deploy/k8s/overlays/$overlay" > "$dir/$overlay.yaml"
  count=$(grep -c '^kind: ' "$dir/$overlay.yaml")

  step "kubernetes-validate --strict -k $K8S_VERSION ($overlay, $count objects)"
  "$VENV/bin/kubernetes-validate" --strict -k "$K8S_VERSION" --quiet "$dir/$overlay.yaml"
  echo "all $count objects valid against Kubernetes $K8S_VERSION (strict)"

  step "checkov --framework kubernetes ($overlay)"
  "$VENV/bin/checkov" -d "$dir" --framework kubernetes --skip-download --compact --quiet
  "$PY" - "$dir/$overlay.yaml" <<'PY'
import sys, yaml
skips = {}
for d in yaml.safe_load_all(open(sys.argv[1], encoding="utf-8")):
    for key, value in sorted(((d or {}).get("metadata", {}).get("annotations") or {}).items()):
        if key.startswith("checkov.io/skip"):
            skips.setdefault(tuple(value.split("=", 1)), []).append(f"{d['kind']}/{d['metadata']['name']}")
for (check, reason), where in sorted(skips.items()):
    print(f"skipped {check} on {', '.join(where)}:\n    {reason}")
PY

  step "deploy/check_manifests.py ($overlay)"
  "$PY" deploy/check_manifests.py "$overlay" "$dir/$overlay.yaml"
done

# --- the image --------------------------------------------------------------------------------
step "checkov --framework dockerfile (deploy/docker/Dockerfile)"
"$VENV/bin/checkov" -f deploy/docker/Dockerfile --framework dockerfile --skip-download --compact --quiet

step "deploy manifests OK"

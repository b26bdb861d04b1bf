#!/usr/bin/env bash
# `ld k8s render`'s manifests (ConfigMap, Secret, Indexed Job, collector Deployment and
# Service) checked against Kubernetes' own schemas by pip's kubernetes-validate, strictly
# (an unknown field fails), for 1.29 (the first whose Jobs take backoffLimitPerIndex) and
# 1.37, the newest it bundles.
#
# Usage: scripts/e2e/k8s.sh LD_BINARY
set -euo pipefail
LD="${1:?usage: scripts/e2e/k8s.sh LD_BINARY}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

python3 -m venv "$WORK/venv"
timeout 300 "$WORK/venv/bin/pip" install -q kubernetes-validate

# A golden plan with a secrets file beside it, so that every document is rendered.
PLAN="$(ls "$ROOT"/fixtures/*/*.plan.json | head -1)"
cp "$PLAN" "$WORK/plan.json"
printf 'API_KEY=not-a-real-key\n' > "$WORK/plan.json.secrets.env"
"$LD" k8s render "$WORK/plan.json" --parallelism 4 --image registry.example/ld:1 \
  --namespace load --output "$WORK/ld-k8s.yaml" -- -d 5m --users 400
grep -q '^kind: Secret' "$WORK/ld-k8s.yaml" || { echo "no Secret rendered" >&2; exit 1; }
for version in 1.29.0 1.37.0; do
  echo "kubernetes-validate --strict -k $version (plan: ${PLAN#"$ROOT"/})"
  "$WORK/venv/bin/kubernetes-validate" --strict -k "$version" "$WORK/ld-k8s.yaml"
done
echo "the manifests of ld k8s render validate"

#!/usr/bin/env bash
# The change pipeline's five steps done by hand with the raw tools — buildctl, helm,
# curl, crane — for bench/pipeline to time against `conveyor pipeline run`.
# Inputs (environment, prepared by bench/pipeline): REPO (the checkout), WORK (a scratch
# dir holding Dockerfile.test, Dockerfile.run-tests, Dockerfile.production, values.json,
# e2e.tsv), NAME (release/image name), NS, REGISTRY, BUILDKIT, CHART, KUBECONFIG,
# DOCKER_CONFIG (registry credentials), and BUILDCTL HELM CRANE (binaries).
set -euo pipefail

# 1. Build the test variant.
"$BUILDCTL" --addr "$BUILDKIT" build --frontend dockerfile.v0 \
  --local context="$REPO" --local dockerfile="$WORK" --opt filename=Dockerfile.test
# 2. Run its tests (the entrypoint as a build step).
"$BUILDCTL" --addr "$BUILDKIT" build --frontend dockerfile.v0 \
  --local context="$REPO" --local dockerfile="$WORK" --opt filename=Dockerfile.run-tests
# 3. Build the production variant and push it as a candidate.
"$BUILDCTL" --addr "$BUILDKIT" build --frontend dockerfile.v0 \
  --local context="$REPO" --local dockerfile="$WORK" --opt filename=Dockerfile.production \
  --output "type=image,name=$REGISTRY/bench-raw/candidates/$NAME:run,push=true,registry.insecure=true" \
  --metadata-file "$WORK/meta.json"
digest=$(sed -n 's/.*"containerimage.digest": *"\([^"]*\)".*/\1/p' "$WORK/meta.json")
candidate="$REGISTRY/bench-raw/candidates/$NAME@$digest"
# 4. Deploy in a namespace of its own, wait, helm test, e2e from outside, tear down.
"$HELM" install "$NAME" "$CHART" -n "$NS" --create-namespace -f "$WORK/values.json" \
  --set "image.repository=$REGISTRY/bench-raw/candidates/$NAME" --set "image.digest=$digest" \
  --wait --timeout 5m
"$HELM" test "$NAME" -n "$NS"
ip=$(kubectl -n "$NS" get svc "$NAME" -o jsonpath='{.spec.clusterIP}')
port=$(kubectl -n "$NS" get svc "$NAME" -o jsonpath='{.spec.ports[0].port}')
while IFS=$'\t' read -r method path status contains; do
  body=$(curl -sS --retry 5 --retry-connrefused -X "$method" -o - -w '\n%{http_code}' "http://$ip:$port$path")
  [ "${body##*$'\n'}" = "$status" ] || { echo "e2e $path: status ${body##*$'\n'}, want $status" >&2; exit 1; }
  [ -z "$contains" ] || [[ "$body" == *"$contains"* ]] || { echo "e2e $path: no $contains" >&2; exit 1; }
done < "$WORK/e2e.tsv"
# As conveyor's teardown does: busybox httpd ignores SIGTERM, and the kubelet keeps
# the grace period of a pod's first deletion, so orphan the pods, delete them with a
# short grace, then delete the namespace.
"$HELM" uninstall "$NAME" -n "$NS" --cascade=orphan
kubectl delete namespace "$NS" --wait=false
kubectl -n "$NS" delete pods --all --grace-period=1 --wait=false || true
kubectl wait --for=delete "namespace/$NS" --timeout=5m || true
# 5. Publish: copy the tested digest into the public repository, layers mounted.
"$CRANE" copy --insecure "$candidate" "$REGISTRY/bench-raw/$NAME:published"

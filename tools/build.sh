#!/usr/bin/env bash
# Builds the pinned third-party programs of the local stack, once, into a cache
# outside the clone: $CONVEYOR_CACHE/tools/<name>-<version>/bin (default
# ~/.cache/conveyor). A finished build is never redone; a half-finished one is.
#
#   tools/build.sh [all|temporal|temporal-server|buildkit|etcd|kubernetes|kwok|jaeger]...   build what is missing
#   tools/build.sh helm crane                                   the raw tools bench/ compares with
#   tools/build.sh --print-dir NAME                             print a tool's bin dir
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
cache=${CONVEYOR_CACHE:-$HOME/.cache/conveyor}
export GOFLAGS="${GOFLAGS:-} -trimpath"

version_of() {
  case $1 in
    temporal) echo "$TEMPORAL_CLI_VERSION" ;;
    temporal-server) echo "$TEMPORAL_SERVER_VERSION-ui-$TEMPORAL_UI_SERVER_VERSION" ;;
    buildkit) echo "$BUILDKIT_VERSION" ;;
    etcd) echo "$ETCD_VERSION" ;;
    kubernetes) echo "$KUBERNETES_VERSION" ;;
    kwok) echo "$KWOK_VERSION" ;;
    helm) echo "$HELM_VERSION" ;;
    crane) echo "$CRANE_VERSION" ;;
    jaeger) echo "$JAEGER_VERSION" ;;
    *) echo "tools/build.sh: unknown tool '$1' (known: temporal temporal-server buildkit etcd kubernetes kwok jaeger helm crane)" >&2; exit 2 ;;
  esac
}

dir_of() { echo "$cache/tools/$1-$(version_of "$1")"; }

build_temporal() {
  GOBIN="$1/bin" go install "github.com/temporalio/cli/cmd/temporal@$TEMPORAL_CLI_VERSION"
}

# The production Temporal: the server (its four services run as separate
# processes), the schema tool and the UI server, from the wrapper module.
build_temporal-server() {
  (cd "$here/temporal-server" &&
    go build -o "$1/bin/temporal-server" go.temporal.io/server/cmd/server &&
    go build -o "$1/bin/temporal-sql-tool" go.temporal.io/server/cmd/tools/sql &&
    go build -o "$1/bin/temporal-ui-server" github.com/temporalio/ui-server/v2/cmd/server)
}

# kwok simulates the nodes of the second cluster (codfw); its go.mod has no
# replace directives, so a plain install works.
build_kwok() {
  GOBIN="$1/bin" go install "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
}

build_helm() {
  GOBIN="$1/bin" go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
}

build_crane() {
  GOBIN="$1/bin" go install "github.com/google/go-containerregistry/cmd/crane@$CRANE_VERSION"
}

# Jaeger, the trace store the stack's workers and receiver export to over OTLP.
build_jaeger() {
  (cd "$here/jaeger" && go build -o "$1/bin/jaeger" github.com/jaegertracing/jaeger/cmd/jaeger)
}

build_buildkit() {
  (cd "$here/buildkit" && go build -o "$1/bin/" github.com/moby/buildkit/cmd/buildkitd github.com/moby/buildkit/cmd/buildctl)
}

build_etcd() {
  (cd "$here/etcd" && go build -o "$1/bin/etcd" go.etcd.io/etcd/server/v3)
}

build_kubernetes() {
  local v=$KUBERNETES_VERSION minor pkg ld=""
  minor=${v#v1.}; minor=${minor%%.*}
  # Stamp the version the way Kubernetes' own release builds do; without it the
  # servers report v0.0.0-master and Helm's kubeVersion constraints fail.
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ld+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  (cd "$here/kubernetes" && go build -ldflags "$ld" -o "$1/bin/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy)
}

build() {
  local name=$1 dir partial start
  dir=$(dir_of "$name")
  if [ -d "$dir/bin" ]; then
    echo "tools: $name $(version_of "$name") cached in $dir"
    return
  fi
  partial="$dir.partial"
  rm -rf "$partial"; mkdir -p "$partial/bin"
  start=$(date +%s)
  echo "tools: building $name $(version_of "$name") (first time only; see $partial.log)"
  if ! "build_$name" "$partial" >"$partial.log" 2>&1; then
    echo "tools: building $name failed; last lines of $partial.log:" >&2
    tail -n 20 "$partial.log" >&2
    exit 1
  fi
  mv "$partial" "$dir"
  mv "$partial.log" "$dir/build.log"
  echo "tools: built $name in $(( $(date +%s) - start ))s -> $dir/bin"
}

if [ "${1:-}" = --print-dir ]; then
  echo "$(dir_of "$2")/bin"
  exit 0
fi
mkdir -p "$cache/tools"
# One build at a time per cache: concurrent `dev up`s (tests in parallel packages)
# wait for the first instead of clobbering its half-finished build.
exec 9>"$cache/tools/.lock"
flock 9
targets=("$@")
[ ${#targets[@]} -gt 0 ] && [ "${targets[0]}" != all ] || targets=(temporal temporal-server buildkit etcd kubernetes kwok jaeger)
for t in "${targets[@]}"; do version_of "$t" >/dev/null; done
for t in "${targets[@]}"; do build "$t"; done

#!/usr/bin/env bash
# conveyor builds conveyor: builds the Go binaries on the host, reproducibly, into
# bin/images/ (a clean directory each time), then each variant of .pipeline/blubber.yaml
# with `conveyor blubber build` on the local stack's BuildKit, and pushes the images to
# its registry under the version (as the Makefile's VERSION) and `latest`. Then the same
# for the images docker-compose.yml runs besides conveyor's (deploy/images/blubber.yaml:
# PostgreSQL, Temporal's server and UI, the registry, buildkitd), with the pinned tool
# builds (tools/build.sh; `make tools`) copied into bin/images/ too. Prints one line per
# image, IMAGE:TAG@DIGEST. `make images` runs it; so does the reproducibility test in
# integration/images_test.go, twice.
#
# The environment: VERSION (default `git describe --always --dirty`), IMAGES_PREFIX
# (default localhost:5000/conveyor), SOURCE_DATE_EPOCH (default the commit time of
# HEAD), and conveyor's own (CONVEYOR_STATE_DIR, CONVEYOR_CONFIG) to find the stack.
set -euo pipefail
cd "$(dirname "$0")/.."
version=${VERSION:-$(git describe --always --dirty 2>/dev/null || echo dev)}
prefix=${IMAGES_PREFIX:-localhost:5000/conveyor}
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
# .pipeline/blubber.yaml copies the binaries from here, and .dockerignore lets only it in.
out=bin/images

rm -rf "$out"
mkdir -p "$out"
# No cgo, no paths of this machine, no VCS stamp, no build ID: the same source gives the
# same bytes. The mode is set, not left to the umask.
for b in conveyor:./starter conveyor-worker:./workers; do
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 GOFLAGS= go build -trimpath -buildvcs=false \
		-ldflags "-X main.version=$version -buildid=" -o "$out/${b%%:*}" "${b#*:}"
	chmod 0755 "$out/${b%%:*}"
done
# The pinned tools are copied, not rebuilt: tools/build.sh --print-dir only says where
# each build lives. The mode is set here too.
tool() {
	local dir
	dir=$(tools/build.sh --print-dir "$1")
	shift
	for b in "$@"; do
		[ -x "$dir/$b" ] || { echo "images: $dir/$b is missing: run \`make tools\`" >&2; exit 1; }
		install -m 0755 "$dir/$b" "$out/$b"
	done
}
tool temporal-server temporal-server temporal-sql-tool temporal-ui-server
tool temporal temporal
tool buildkit buildkitd buildctl
install -m 0755 deploy/images/postgresql-entrypoint.sh "$out/postgresql-entrypoint"
echo "images: binaries of $version built in $out ($(sha256sum "$out"/* | awk '{printf "%s %.12s ", $2, $1}'))" >&2

# The CLI just built runs the builds: conveyor builds conveyor. The second tag's build
# is BuildKit's cache and the same digest.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for image in .pipeline/blubber.yaml:worker:conveyor-worker .pipeline/blubber.yaml:cli:conveyor \
	deploy/images/blubber.yaml:{postgresql,temporal-server,temporal-ui,registry,buildkitd}; do
	IFS=: read -r file variant name <<<"$image"
	name=$prefix/${name:-$variant}
	for tag in "$version" latest; do
		echo "images: $file variant $variant -> $name:$tag" >&2
		"$out/conveyor" blubber build "$file" "$variant" --tag "$name:$tag" --push 2>"$log" ||
			{ cat "$log" >&2; exit 1; }
	done
done

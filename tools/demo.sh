#!/usr/bin/env bash
# The main job on the local stack: builds the Debian base image once (the optional
# `debian` component), then runs the change pipeline for examples/node-hello with a
# worker started for the occasion, and says where to watch it in the Temporal UI.
set -euo pipefail
cd "$(dirname "$0")/.."
state=${CONVEYOR_STATE_DIR:-.local}
# node-hello builds on localhost:5000/conveyor/debian:bookworm: debootstrap runs once
# (about a minute), later runs find the image in the registry.
bin/conveyor dev up --with debian 2>&1 >/dev/null | { grep -v 'already running' || true; }
mkdir -p "$state/logs"
bin/conveyor-worker --config "$state/conveyor.yaml" >>"$state/logs/demo-worker.log" 2>&1 &
worker=$!
trap 'kill -TERM $worker 2>/dev/null; wait $worker 2>/dev/null || true' EXIT
echo "demo: worker pid $worker, log $state/logs/demo-worker.log"
echo "demo: Temporal UI http://127.0.0.1:8233/namespaces/default/workflows"
# A sample service is a repository of its own: make one from examples/node-hello.
repo="$state/demo-repos/node-hello"
rm -rf "$repo" && mkdir -p "$repo" && cp -a examples/node-hello/. "$repo/"
git -C "$repo" init -q -b main
git -C "$repo" add -A
git -C "$repo" -c user.name=conveyor -c user.email=conveyor@localhost commit -q -m "node-hello: demo"
bin/conveyor --config "$state/conveyor.yaml" pipeline run --repo "$repo" --ref main --project node-hello --publish --follow

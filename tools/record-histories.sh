#!/usr/bin/env bash
# Records the workflow histories that workflows/replay_test.go replays, from a real
# run: a throwaway Temporal dev server on a non-default port (so it never touches the
# local stack), the real conveyor-worker, and `temporal workflow execute`.
#
#   tools/record-histories.sh            record every history in the table below
#   tools/record-histories.sh ping ...   record only the named ones
#
# Environment: RECORD_PORT (default 17233) is the server's gRPC port.
# To record a new workflow, add a line to the table at the bottom.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
out=$repo/workflows/testdata/histories
port=${RECORD_PORT:-17233}
addr=127.0.0.1:$port

bin=$("$repo/tools/build.sh" --print-dir temporal)
[ -x "$bin/temporal" ] || "$repo/tools/build.sh" temporal
temporal=$bin/temporal

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# wait_for DESCRIPTION LOG COMMAND...: run COMMAND until it succeeds, for up to 60s.
wait_for() {
  local what=$1 log=$2 deadline=$((SECONDS + 60))
  shift 2
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      echo "record-histories: $what did not come up within 60s; last lines of $log:" >&2
      tail -n 20 "$log" >&2
      exit 1
    fi
    sleep 0.5
  done
}

echo "record-histories: starting a throwaway Temporal dev server on $addr" >&2
# The same custom search attributes as the local stack (workflows.SearchAttributes;
# a test in workflows/ checks this list against it).
"$temporal" server start-dev --headless --ip 127.0.0.1 --port "$port" --db-filename "$work/temporal.db" \
  --search-attribute ConveyorProject=Keyword \
  --search-attribute ConveyorChange=Int \
  --search-attribute ConveyorPatchset=Int \
  --search-attribute ConveyorStep=Keyword \
  --search-attribute ConveyorStage=Keyword \
  --search-attribute ConveyorApprover=KeywordList \
  >"$work/server.log" 2>&1 &
pids+=($!)
wait_for "the Temporal dev server" "$work/server.log" "$temporal" operator cluster health --address "$addr"

echo "record-histories: building and starting conveyor-worker" >&2
(cd "$repo" && go build -o "$work/conveyor-worker" ./workers)
"$work/conveyor-worker" --address "$addr" --namespace default >"$work/worker.log" 2>&1 &
pids+=($!)
wait_for "conveyor-worker" "$work/worker.log" grep -q '"Serving"\|msg=Serving' "$work/worker.log"

# record NAME WORKFLOW-TYPE TASK-QUEUE INPUT-JSON: run the workflow to completion and
# store its history as $out/NAME.json.
record() {
  local name=$1 type=$2 queue=$3 input=$4 id="record-$1-$(date +%s)"
  if [ ${#only[@]} -gt 0 ] && [[ " ${only[*]} " != *" $name "* ]]; then return; fi
  echo "record-histories: $name: running $type on $queue" >&2
  if ! "$temporal" workflow execute --address "$addr" --type "$type" --task-queue "$queue" \
      --workflow-id "$id" --input "$input" >"$work/$name.result" 2>&1; then
    echo "record-histories: $name failed:" >&2
    cat "$work/$name.result" >&2
    echo "worker log:" >&2
    tail -n 20 "$work/worker.log" >&2
    exit 1
  fi
  mkdir -p "$out"
  "$temporal" workflow show --address "$addr" --workflow-id "$id" --output json >"$out/$name.json"
  echo "record-histories: wrote $out/$name.json" >&2
}

only=("$@")
# NAME   WORKFLOW  TASK QUEUE       INPUT
record ping Ping conveyor-build '{"pools":["build","deploy","migrate"],"message":"recorded"}'

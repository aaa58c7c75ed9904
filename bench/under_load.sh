#!/usr/bin/env bash
# The test suite on a busy machine: two CPU-bound processes run beside it, one per core of a 2-core box.
# Prints the suite's wall time with the load, and (with --compare) without it first, measured in one go.
#   bash bench/under_load.sh            # loaded run only
#   bash bench/under_load.sh --compare  # quiet run, then loaded run, and their ratio
# Extra arguments after the flag go to pytest (e.g. -x, -k). Every burner is bounded and killed on exit.
set -uo pipefail
cd "$(dirname "$0")/.."

compare=0
if [[ "${1:-}" == "--compare" ]]; then compare=1; shift; fi
export PREFECT_HOME="${PREFECT_HOME:-$(mktemp -d)}" DO_NOT_TRACK=1 PREFECT_SERVER_ANALYTICS_ENABLED=false
SUITE_LIMIT_S=${SUITE_LIMIT_S:-3600}

run_suite() {  # $1 = label; prints "label: N s, exit E"
  local start end rc
  start=$(date +%s)
  timeout "$SUITE_LIMIT_S" python -m pytest -q -p no:cacheprovider "${@:2}" > "/tmp/reasonmed-suite-$1.log" 2>&1
  rc=$?
  end=$(date +%s)
  echo "$1: $((end - start)) s, exit $rc ($(tail -n 1 "/tmp/reasonmed-suite-$1.log"))"
  return $rc
}

quiet_rc=0
if (( compare )); then
  run_suite quiet "$@"; quiet_rc=$?
fi

burners=()
cleanup() { for p in "${burners[@]}"; do kill "$p" 2>/dev/null; done; }
trap cleanup EXIT
for _ in 1 2; do
  timeout "$SUITE_LIMIT_S" python -c 'while True: pass' &
  burners+=("$!")
done
echo "2 CPU burners running (pids ${burners[*]}); load average: $(cut -d' ' -f1-3 /proc/loadavg)"
run_suite loaded "$@"; loaded_rc=$?
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
if (( compare )); then
  q=$(grep -o 'passed in [0-9.]*s' /tmp/reasonmed-suite-quiet.log | tail -1 | grep -o '[0-9.]*')
  l=$(grep -o 'passed in [0-9.]*s' /tmp/reasonmed-suite-loaded.log | tail -1 | grep -o '[0-9.]*')
  [[ -n "$q" && -n "$l" ]] && python -c "print(f'loaded / quiet wall time = {float(\"$l\") / float(\"$q\"):.2f}')"
  exit $(( quiet_rc || loaded_rc ))
fi
exit $loaded_rc

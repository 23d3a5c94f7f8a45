#!/usr/bin/env bash
# The whole suite N times in a row (default 20), stopping at the first failing run: issue 13's de-flake check.
# Meant to run detached while something else loads the machine, e.g. on a 2-core box:
#   nohup bash benchmarks/suite_repeat.sh 20 > out/suite_repeat.log 2>&1 &
#   nice -n 10 python benchmarks/mutation.py --all        # or any CPU-heavy job, as the load
# One line per run (exit status, pytest's summary, seconds, load average); the last line says how many passed.
set -u
runs=${1:-20}
python=${PYTHON:-python}
cd "$(dirname "$0")/.."
mkdir -p out
for i in $(seq 1 "$runs"); do
  start=$(date +%s)
  "$python" -m pytest -q -p no:cacheprovider -p no:randomly > "out/suite_repeat_run.txt" 2>&1
  status=$?
  summary=$(tail -n 1 out/suite_repeat_run.txt)
  echo "run $i/$runs: exit $status, $summary, $(( $(date +%s) - start )) s, load $(cut -d' ' -f1-3 /proc/loadavg)"
  if [ "$status" -ne 0 ]; then
    cp out/suite_repeat_run.txt "out/suite_repeat_failed_$i.txt"
    echo "stopped: run $i failed after $((i - 1)) in a row passed (its output: out/suite_repeat_failed_$i.txt)"
    exit 1
  fi
done
echo "$runs runs in a row passed"

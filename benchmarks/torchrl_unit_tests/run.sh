#!/bin/bash
# Measure TorchRL 0.14.1's own tests (renamed torchrl -> streamrl) against a streamrl checkout.
# usage: run.sh [STREAMRL_CHECKOUT=/work/main] [FILES_TXT=$MEASURE_DIR/files.txt]
# Output: per-file table, totals, ranked failure causes; results in $M/results/<name>-<time>/
set -u
STREAMRL=$(realpath "${1:-/work/main}")
M=${MEASURE_DIR:-/tmp/torchrl_unit_tests}
FILES_TXT=${2:-$M/files.txt}
PY=${PY:-/work/main/.venv/bin/python}
TAG=$(basename "$STREAMRL")-$(cd "$STREAMRL" && git rev-parse --short HEAD 2>/dev/null || echo nogit)-$(date -u +%H%M)
OUT=${OUT:-$M/results/$TAG}   # set OUT=<dir> and SKIP_DONE=1 to resume into an existing results dir
R=$M/renamed
mkdir -p "$OUT/plain" "$OUT/stubbed" "$OUT/stubs"
T0=$(date +%s)

# step 2: renamed copy of the saved TorchRL tests and of torchrl/testing
rm -rf "$R"; cp -r "$M/torchrl_tests" "$R"
rm -rf "$R/_streamrl_testing"; cp -r "$M/torchrl_testing_src" "$R/_streamrl_testing"
find "$R" -name '__pycache__' -prune -exec rm -rf {} +
find "$R" -name '*.py' -print0 | xargs -0 sed -i 's/torchrl/streamrl/g'
printf '[pytest]\n' > "$R/test/pytest.ini"

export PYTHONPATH="$STREAMRL:$M/harness:$M/extra_site"   # extra_site: scipy (test_specs imports scipy.stats)
export MEASURE_TESTING_DIR="$R/_streamrl_testing"
cd "$R/test"
for f in $(grep -v '^#' "$FILES_TXT"); do
  k=$(echo "$f" | sed 's#/#__#g; s#\.py$##')
  if [ -n "${SKIP_DONE:-}" ] && [ -s "$OUT/plain/$k.xml" ]; then continue; fi
  t1=$(date +%s)
  # step 3: plain run (one flock per file)
  MEASURE_STUBS= flock /tmp/streamrl-heavy.lock timeout 1500 "$PY" -m pytest "$f" -q -p no:cacheprovider \
      -p measure_plugin --timeout 30 --tb=no -rN --junitxml="$OUT/plain/$k.xml" > "$OUT/plain/$k.log" 2>&1
  if grep -q 'message="collection failure"' "$OUT/plain/$k.xml" 2>/dev/null; then
    # collection failed: stub the missing names and measure the rest of the file
    flock /tmp/streamrl-heavy.lock timeout 600 "$PY" "$M/harness/find_missing.py" "$OUT/stubs/$k.json" "$f" \
        > "$OUT/stubs/$k.log" 2>&1
    MEASURE_STUBS="$OUT/stubs/$k.json" flock /tmp/streamrl-heavy.lock timeout 1500 "$PY" -m pytest "$f" -q \
        -p no:cacheprovider -p measure_plugin --timeout 30 --tb=no -rN \
        --junitxml="$OUT/stubbed/$k.xml" > "$OUT/stubbed/$k.log" 2>&1
  fi
  echo "$f done in $(( $(date +%s) - t1 )) s" >&2
done
echo "streamrl checkout: $STREAMRL ($TAG); total time $(( $(date +%s) - T0 )) s"
"$PY" "$M/harness/analyze.py" "$OUT" "$M/denominators.json" "$FILES_TXT" 25 | tee "$OUT/report.txt"
"$PY" "$M/harness/missing_names.py" "$OUT" "$R/test" | tee -a "$OUT/report.txt"

#!/bin/bash
# Optional baseline: run the saved (un-renamed) files under TorchRL 0.14.1 itself, to learn which
# tests TorchRL passes/skips on this machine. One flock per file. Results: $M/results/torchrl/<name>.xml
M=${MEASURE_DIR:-/tmp/torchrl_unit_tests}
FILES_TXT=${1:-$M/files.txt}
OUT=$M/results/torchrl; mkdir -p $OUT
cd $M/torchrl_tests/test
printf '[pytest]\n' > pytest.ini
for f in $(grep -v '^#' "$FILES_TXT"); do
  k=$(echo "$f" | sed 's#/#__#g; s#\.py$##')
  [ -s "$OUT/$k.xml" ] && continue
  t1=$(date +%s)
  PYTHONPATH=$M/peer_shim:$M/extra_site flock /tmp/streamrl-heavy.lock timeout 900 /tmp/peers/bin/python -m pytest "$f" -q \
     -p no:cacheprovider --timeout 30 --tb=no -rN --junitxml="$OUT/$k.xml" > "$OUT/$k.log" 2>&1
  echo "$f (torchrl) done in $(( $(date +%s) - t1 )) s" >&2
done

#!/bin/bash
# Denominator: tests collected from the saved files under TorchRL 0.14.1 (/tmp/peers).
# usage: count_torchrl.sh [FILES_TXT]  -> writes $MEASURE_DIR/denominators.json
M=${MEASURE_DIR:-/tmp/torchrl_unit_tests}
FILES_TXT=${1:-$M/files.txt}
cd $M/torchrl_tests/test
printf '[pytest]\n' > pytest.ini
echo "{" > $M/denominators.json.tmp
first=1
for f in $(grep -v '^#' "$FILES_TXT"); do
  n=$(PYTHONPATH=$M/peer_shim:$M/extra_site timeout 600 /tmp/peers/bin/python -m pytest --collect-only -q -p no:cacheprovider "$f" 2>&1 \
      | grep -E '^[0-9]+ tests? collected|^collected [0-9]+' | grep -oE '[0-9]+' | head -1)
  [ $first = 1 ] || echo "," >> $M/denominators.json.tmp; first=0
  printf '"%s": %s' "$f" "${n:-0}" >> $M/denominators.json.tmp
  echo "$f: ${n:-0}" >&2
done
echo "}" >> $M/denominators.json.tmp
mv $M/denominators.json.tmp $M/denominators.json

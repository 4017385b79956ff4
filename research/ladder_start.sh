#!/bin/bash
# Start one CPU session's share of the cumulative ablation (research/plans/ablation_cumulative_w16.json):
#   FER_DATA_DIR=/path/to/ferplus PYTHON=.venv/bin/python research/ladder_start.sh OUT STOP_AT
# OUT: a new device_runs --out folder (e.g. runs/cum_w16_8); STOP_AT: the clock time (e.g. 18:10) at which a
# still-running run stops and keeps its resume state, its next occurrence (00:20 late in the evening means after
# midnight); leave ~25 min before the session ends for research/ladder_session.sh and a commit. Runs stopped by an earlier session (results/unfinished/) go on
# first, then the runs the committed records lack, in the order that completes ladder rows soonest.
# Trains in the background (log: OUT.log); run research/ladder_session.sh OUT TAG as runs finish.
set -euo pipefail
out=${1:?usage: research/ladder_start.sh OUT STOP_AT}
stop=${2:?usage: research/ladder_start.sh OUT STOP_AT}
: "${FER_DATA_DIR:?set FER_DATA_DIR to the FER+ folder}"
py=${PYTHON:-python}
plan=$(dirname "$0")/plans/ablation_cumulative_w16.json
dest=results/ablation_cumulative_w16
[ ! -e "$out" ] || { echo "$out: exists; give a new folder (a runner's report would mix two sessions)" >&2; exit 1; }
stop_s=$(date -d "$stop" +%s 2>/dev/null) || { echo "STOP_AT '$stop': not a clock time (HH:MM)" >&2; exit 1; }
deadline=$(( stop_s - $(date +%s) ))
[ "$deadline" -gt 0 ] || deadline=$(( deadline + 86400 ))
[ "$deadline" -le 43200 ] || { echo "STOP_AT $stop is more than 12 h away; a session is shorter" >&2; exit 1; }
only=$("$py" -m research.cumulative_ablation "$dest"/device_report_*.json --plan "$plan" --records "$dest" \
  --pending results/unfinished)
[ -n "$only" ] || { echo "every run of the plan has finished: nothing to train"; exit 0; }
mkdir -p "$out/work"
for name in ${only//,/ }; do
  if [ -d "results/unfinished/$name" ]; then cp -r "results/unfinished/$name" "$out/work/"; fi
done
nohup "$py" -m research.device_runs --plan "$plan" --only "$only" --parallel 1 --data "$FER_DATA_DIR" \
  --out "$out" --deadline "$deadline" > "$out.log" 2>&1 &
echo "started (pid $!): $only; running runs stop at $stop; log: $out.log"

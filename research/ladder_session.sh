#!/bin/bash
# Keep one CPU session's progress on the cumulative ablation (research/plans/ablation_cumulative_w16.json)
# in results/, so the next session can go on and the report can read it:
#   PYTHON=.venv/bin/python research/ladder_session.sh OUT TAG
# OUT: the session's device_runs --out folder (its work/ holds the run folders); TAG: e.g. 2026-12-07a.
# It may run while the session still trains (again with the same TAG as runs finish): a running run's
# latest resume state is kept like a stopped one's, so a reset machine loses at most an epoch.
# Writes results/ablation_cumulative_w16/device_report_TAG.json, each finished run's records beside it,
# a stopped run's BackupAndRestore state in results/unfinished/<run>/ (a finished run's is removed),
# and the merged table results/ablation_cumulative_w16.csv (runs trained with settings the plan no longer
# asks are left out and named).
set -euo pipefail
out=${1:?usage: research/ladder_session.sh OUT TAG}
tag=${2:?usage: research/ladder_session.sh OUT TAG}
work=${WORK:-$out/work}
dest=results/ablation_cumulative_w16
[ -d "$work" ] || { echo "$work: not found (is OUT a device_runs --out folder?)" >&2; exit 1; }
if [ ! -f "$out/device_report.json" ]; then
  # A runner that writes no report as it goes: take stock of the runs finished so far.
  "${PYTHON:-python}" -m research.device_runs --snapshot --plan "$(dirname "$0")/plans/ablation_cumulative_w16.json" \
    --out "$out" --work "$work"
fi
mkdir -p "$dest"
cp "$out/device_report.json" "$dest/device_report_$tag.json"
for d in "$work"/*/; do
  name=$(basename "$d")
  if [ -f "$d/results/device_summary.json" ]; then
    mkdir -p "$dest/$name"
    cp "$d"/results/{training.json,history.csv,device_summary.json,data.json} "$dest/$name/"
    rm -rf "results/unfinished/$name"
  elif [ -d "$d/model/backup" ]; then
    rm -rf "results/unfinished/$name"
    mkdir -p "results/unfinished/$name/model" "results/unfinished/$name/results"
    cp -r "$d/model/backup" "results/unfinished/$name/model/"
    cp "$d"/results/{data.json,history.csv,history.json} "results/unfinished/$name/results/" 2>/dev/null || true
  fi
done
"${PYTHON:-python}" -m research.cumulative_ablation "$dest"/device_report_*.json --out results/ablation_cumulative_w16.csv \
  --plan "$(dirname "$0")/plans/ablation_cumulative_w16.json" --records "$dest"

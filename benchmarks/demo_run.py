"""How long the demo run's notebooks take on this machine, against the 4-minute goal.

Runs ``configs/demo.yaml`` (built-in synthetic faces, every notebook, nothing published to
``figures/`` or ``reports/``) in a temporary folder and reads the per-notebook times the runner
records in ``results/run.json``; ``--from-run`` reads them from a finished run instead. Exits 1
when the notebooks together take longer than ``--target-s``.

    python -m benchmarks.demo_run --out results/benchmarks/cpu_amd_avx2/demo_run.json
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from fer_helpers.artifacts import machine_info, now_iso, read_json, write_json
from fer_helpers.runner import PROJECT_ROOT, RunSpec, load_config, run

TARGET_S = 240.0   # the demo's notebooks together, on a 2-core CPU without AVX-512


def demo_timings(run_dir: Path) -> dict:
    """The per-notebook seconds, the machine and the parameters recorded by a finished run."""
    record = read_json(Path(run_dir) / "results" / "run.json", "run record")
    if record.get("status") != "complete" or not record.get("timings_s"):
        raise ValueError(f"{run_dir}: the run did not complete (status {record.get('status')!r}); no timings to read")
    return {"timings_s": record["timings_s"], "machine": record.get("machine"), "parameters": record.get("parameters"),
            "is_demo": record.get("is_demo")}


def summarize(timings: dict, target_s: float = TARGET_S) -> dict:
    """Total notebook time against the target."""
    total = round(sum(timings["timings_s"].values()), 1)
    return {**timings, "total_s": total, "target_s": target_s, "within_target": total <= target_s}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(PROJECT_ROOT / "configs" / "demo.yaml"))
    ap.add_argument("--from-run", type=Path, help="read the times of this finished run instead of running the demo")
    ap.add_argument("--target-s", type=float, default=TARGET_S)
    ap.add_argument("--out", help="write the result here (JSON)")
    args = ap.parse_args(argv)
    if args.from_run:
        timings = demo_timings(args.from_run)
    else:
        config = load_config(args.config)
        with tempfile.TemporaryDirectory() as tmp:
            run_dir = run(RunSpec(params=config["params"], run_name=config.get("run_name", "demo"),
                                  runs_dir=Path(tmp), publish=False))
            timings = demo_timings(run_dir)
    result = {"date": now_iso(), "benchmark_machine": machine_info(), **summarize(timings, args.target_s)}
    for name, seconds in result["timings_s"].items():
        print(f"{name:<26} {seconds:7.1f} s")
    print(f"{'total':<26} {result['total_s']:7.1f} s (goal ≤ {args.target_s:g} s: "
          f"{'met' if result['within_target'] else 'MISSED'})")
    if args.out:
        write_json(args.out, result)
    return 0 if result["within_target"] else 1


if __name__ == "__main__":
    sys.exit(main())

"""Training compute in FLOPs, the project's hardware-independent budget unit.

A run's training FLOPs are 6 × (forward multiply-adds per image) × (images seen): see
``fer_helpers.models.training_flops``. This module prices a planned run before it trains, so a
plan can be checked against a budget (e.g. the CPU model's: no more than the VGG reference
recipe's training FLOPs) without a machine.

    python -m research.compute_budget research/plans/resnet.json --reference results/runs/vgg_mid_bf16_s42_clean
"""
from __future__ import annotations

import argparse
import sys

from fer_helpers import training
from fer_helpers.artifacts import read_json
from fer_helpers.release import run_file

#: Training FLOPs of a planned run (``fer_helpers.training.planned_flops``).
planned_flops = training.planned_flops


def recorded_flops(run_dir) -> tuple[float, int]:
    """(training FLOPs, images an epoch) of a finished run folder, either layout (runs recorded
    before FLOPs were counted are priced from their model and images seen)."""
    meta = read_json(run_file(run_dir, "training.json"), "training metadata")
    return training.recorded_flops(meta), int(meta["data"]["n_train_used"])


def main(argv=None) -> int:
    from research.device_runs import base_params, read_plan

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("plan")
    ap.add_argument("--reference", required=True, help="a finished run folder whose FLOPs are the budget")
    ap.add_argument("--n-train", type=int, default=22_708,
                    help="images an epoch without oversampling (the 80%% share of FER2013Train)")
    args = ap.parse_args(argv)
    budget, n_ref = recorded_flops(args.reference)
    plan = read_plan(args.plan)
    print(f"budget (reference): {budget:.3e} FLOPs, {n_ref} images an epoch")
    for run in plan["runs"]:
        params = base_params(plan, run)
        # The reference oversampled like the plan's oversampled runs (fraction 0.15, same split).
        n = n_ref if params.get("imbalance") == "oversample" else args.n_train
        flops = planned_flops(params, n)
        print(f"{run['name']:16s} {flops:.3e}  {flops / budget:5.2f} × budget")
    return 0


if __name__ == "__main__":
    sys.exit(main())

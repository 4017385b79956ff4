"""Train a plan of runs side by side on one accelerator, with the package's own training code.

A plan (``research/plans/*.json``) lists runs, each a name and ``TrainConfig`` parameters;
a run may name a ``teacher`` run, whose class probabilities on the training images it then
distils from (it starts once the teacher has finished). Every run trains through
``fer_helpers.training.train_model`` on the same split as on a CPU, so a model trained here is
the same model, whatever the backend (``KERAS_BACKEND=jax`` on a GPU without TensorFlow).

Each run writes its ordinary run folder plus what comparison on validation needs: the
validation probabilities, plain and with horizontal-flip averaging. The plan's ``groups`` and
``decide`` say which group of seeds becomes the headline; that rule is in the plan, written
before any run. At the end the runner packs what comes back: the chosen models as float32
``.keras`` files without optimizer state, and one archive of every run's records.

    KERAS_BACKEND=jax python -m research.device_runs --plan research/plans/resnet.json \\
        --data paket.npz --out cikti/ [--deadline SECONDS]

(on a lent GPU, ``research/gpu_lease.sh`` carries the data and the wheels and calls this).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np

#: What a plan must give for each run.
RUN_KEYS = {"name", "params"}
#: The parameters that draw a run's validation split; a student and its teacher share them.
SPLIT_KEYS = ("seed", "val_fraction", "label_mode")


def check_teachers(plan: dict, path="plan") -> None:
    """Refuse, before anything trains, a student whose teacher in the plan drew another
    validation split: that teacher trained on the student's validation images, and the
    student would inherit them through its targets (``fer_helpers.training`` checks the
    written file again)."""
    runs = {r["name"]: r for r in plan["runs"]}
    for run in plan["runs"]:
        teacher = runs.get(run.get("teacher"))
        if teacher is None:
            continue
        mine, theirs = base_params(plan, run), base_params(plan, teacher)
        differ = [k for k in SPLIT_KEYS if mine.get(k) != theirs.get(k)]
        if differ:
            pairs = ", ".join(f"{k} {theirs.get(k)} vs {mine.get(k)}" for k in differ)
            raise SystemExit(f"{path}: run {run['name']!r} distils from {teacher['name']!r}, whose validation "
                             f"split differs ({pairs}); give each student a teacher of its own seed")


def read_plan(path) -> dict:
    """A plan file, checked: unique run names, known teachers on their students' validation split,
    groups that name runs."""
    path = Path(path)
    try:
        plan = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SystemExit(f"{path}: cannot read plan ({exc})")
    runs = plan.get("runs")
    if not isinstance(runs, list) or not runs:
        raise SystemExit(f"{path}: a plan needs a non-empty list 'runs'")
    names = [r.get("name") for r in runs]
    for r in runs:
        if not RUN_KEYS <= set(r):
            raise SystemExit(f"{path}: run {r.get('name')!r} lacks {sorted(RUN_KEYS - set(r))}")
        if r.get("teacher") and r["teacher"] not in names:
            raise SystemExit(f"{path}: run {r['name']!r} names unknown teacher {r['teacher']!r}")
    if len(set(names)) != len(names):
        raise SystemExit(f"{path}: run names repeat")
    for group, members in plan.get("groups", {}).items():
        if set(members) - set(names):
            raise SystemExit(f"{path}: group {group!r} names unknown runs {sorted(set(members) - set(names))}")
    check_teachers(plan, path)
    return plan


def base_params(plan: dict, run: dict) -> dict:
    """A run's full parameters: the plan's shared ``defaults`` under the run's own."""
    return {**plan.get("defaults", {}), **run["params"]}


# --------------------------------------------------------------------------- one run (child)

def run_data(data_path: str, params: dict):
    """The data set a run with ``params`` trains on: its label mode, and the validation split its seed draws."""
    from fer_helpers.data import load_dataset

    return load_dataset(data_path, label_mode=params.get("label_mode", "distribution"),
                        val_fraction=params.get("val_fraction", 0.2), seed=params.get("seed", 42), use_cache=False)


def train_one(name: str, params: dict, data_path: str, work: Path, teacher_file: str | None) -> dict:
    """Train one run into ``work/name`` and score it on validation; returns its summary."""
    from fer_helpers.data import save_data_settings
    from fer_helpers.evaluation import classification_metrics
    from fer_helpers.models import load_model, predict_proba
    from fer_helpers.training import TrainConfig, train_model

    if teacher_file:
        params = {**params, "distill_from": teacher_file}
    config = TrainConfig.from_params(params)
    data = run_data(data_path, {**params, "seed": config.seed})
    run_dir = work / name
    # As notebook 03 records it, so fer_helpers.evaluation.evaluate_run scores the run where the
    # held-out data is (with -p data_dir pointing there when the run trained on a bundle).
    save_data_settings(run_dir, data_path, data.label_mode, params.get("val_fraction", 0.2), config.seed)
    result = train_model(data, config, run_dir, verbose=2)
    model = load_model(result.model_path)
    # The model as it is released: float32, no optimizer state (about half the file).
    model.save(run_dir / "model" / "inference.keras")
    val = data.get_split("val")
    summary = {"name": name, "seed": config.seed, "val_n": len(val)}
    for tta in (False, True):
        probs = predict_proba(model, val.images, flip_tta=tta)
        np.save(run_dir / "results" / f"val_probs{'_tta' if tta else ''}.npy", probs.astype(np.float16))
        m = classification_metrics(val.labels, probs, data.classes)
        recall = {row["class"]: row["recall"] for row in m["per_class"]}
        summary["tta" if tta else "plain"] = {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"],
                                              "recall": recall}
    if params.get("write_teacher"):
        write_teacher(model, data, run_dir / "results" / "teacher_probs.npz",
                      {"run": name, "params": result.metadata["params"], "compute": result.metadata["compute"]})
    summary["training"] = {k: result.metadata[k] for k in ("wall_time_s", "epochs_run", "best_epoch",
                                                            "best_val_accuracy", "compute")}
    (run_dir / "results" / "device_summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def write_teacher(model, data, path: Path, source: dict) -> Path:
    """A teacher's flip-averaged probabilities on every FER2013Train image (its train and
    validation shares; never FER2013Valid or FER2013Test), for a student to distil from."""
    from fer_helpers.models import predict_proba
    from fer_helpers.training import save_teacher_probabilities

    train_all = data.subset(data.split != "test")
    probs = predict_proba(model, train_all.images, flip_tta=True)
    return save_teacher_probabilities(path, train_all.names, probs, data.classes, source,
                                      held_out=data.get_split("val").names)


def teacher_from_run(run_dir: Path, data_path: str, path: Path) -> Path:
    """``write_teacher`` for a run that finished without writing one (e.g. trained on a CPU): its
    model, on the split its own seed drew, so a student with that seed keeps a clean validation."""
    from fer_helpers.models import load_model

    # A run folder keeps its records under results/; a committed copy (results/runs/...) keeps them flat.
    meta_path = next(p for p in (run_dir / "results" / "training.json", run_dir / "training.json") if p.is_file())
    meta = json.loads(meta_path.read_text())
    params = meta["params"]
    data = run_data(data_path, params)
    model_path = next(p for p in (run_dir / "model" / "inference.keras", run_dir / "model.keras")
                      if p.is_file())
    return write_teacher(load_model(model_path), data, path,
                         {"run": run_dir.name, "params": params, "compute": meta["compute"]})


# --------------------------------------------------------------------------- the plan (parent)

def decide(plan: dict, summaries: dict) -> dict:
    """Apply the plan's rule: the group with the highest mean validation ``decide.metric``
    (ties broken by ``decide.tie_break``) is the headline; groups missing a run cannot win."""
    rule = plan.get("decide")
    if not rule:
        return {}
    metric, tie = rule["metric"], rule.get("tie_break", "macro_f1")
    scores = {}
    for group in rule["among"]:
        members = plan["groups"][group]
        got = [summaries[m]["tta" if rule.get("tta") else "plain"] for m in members if m in summaries]
        if len(got) == len(members):
            scores[group] = (float(np.mean([g[metric] for g in got])), float(np.mean([g[tie] for g in got])))
    if not scores:
        return {"winner": None, "scores": {}, "rule": rule}
    winner = max(scores, key=lambda g: scores[g])
    return {"winner": winner, "scores": {g: {metric: s[0], tie: s[1]} for g, s in scores.items()}, "rule": rule}


def _spawn(run: dict, plan: dict, args, work: Path, teacher_file: str | None):
    log = open(work / f"{run['name']}.log", "w")
    cmd = [sys.executable, "-m", "research.device_runs", "--plan", args.plan, "--data", args.data,
           "--out", args.out, "--work", args.work, "--one", run["name"], "--override", args.override]
    if teacher_file:
        cmd += ["--teacher-file", teacher_file]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env), log


def _finished_summary(run_dir: Path) -> dict | None:
    """A run's ``device_summary.json`` (written last, so its presence means the run finished), else None."""
    summary = run_dir / "results" / "device_summary.json"
    return json.loads(summary.read_text()) if summary.is_file() else None


def _epochs_done(run_dir: Path) -> int:
    history = run_dir / "results" / "history.csv"
    return max(0, len(history.read_text().splitlines()) - 1) if history.is_file() else 0


def select_runs(plan: dict, names: list[str]) -> list[dict]:
    """The plan's runs named in ``names``, in that order (a CPU session orders its runs to finish
    whole rows first); a name the plan lacks stops before anything trains."""
    by_name = {r["name"]: r for r in plan["runs"]}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise SystemExit(f"--only: the plan has no run named {', '.join(unknown)}")
    return [by_name[n] for n in dict.fromkeys(names)]


def run_plan(plan: dict, args) -> dict:
    """Start runs in plan order, at most ``--parallel`` at a time, a student once its teacher is
    done; stop whatever still runs at the deadline (its records up to then come back)."""
    out = Path(args.out)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    pending = list(plan["runs"])
    running, done, failed = {}, {}, {}
    preset = set(plan.get("preset_teachers", []))  # teachers whose probabilities are already written
    last_note = t0
    while pending or running:
        finished = False
        for name, (proc, log, started) in list(running.items()):
            if proc.poll() is not None:
                log.close()
                del running[name]
                finished = True
                summary = _finished_summary(work / name)
                if proc.returncode == 0 and summary is not None:
                    done[name] = summary
                    print(f"[{time.time() - t0:6.0f} s] done {name}: val acc "
                          f"{done[name]['plain']['accuracy']:.4f} (flip {done[name]['tta']['accuracy']:.4f}), "
                          f"{time.time() - started:.0f} s", flush=True)
                else:
                    failed[name] = proc.returncode
                    print(f"[{time.time() - t0:6.0f} s] FAILED {name} (exit {proc.returncode})", flush=True)
        if finished:
            write_report(out, plan, done, failed, time.time() - t0,
                         in_progress=[*running, *(r["name"] for r in pending)])
        if args.deadline is not None and time.time() - t0 > args.deadline:
            for name, (proc, log, _) in running.items():
                proc.terminate()
                failed[name] = f"deadline (epochs done: {_epochs_done(work / name)})"
                print(f"[{time.time() - t0:6.0f} s] stopped at the deadline: {name}", flush=True)
            time.sleep(5)
            for proc, log, _ in running.values():
                if proc.poll() is None:
                    proc.kill()
                log.close()
            failed.update({r["name"]: "not started (deadline)" for r in pending})
            break
        for run in list(pending):
            if len(running) >= args.parallel:
                break
            teacher = run.get("teacher")
            if teacher in failed:
                pending.remove(run)
                failed[run["name"]] = f"teacher {teacher} failed"
                continue
            if teacher and teacher not in done and teacher not in preset:
                continue
            teacher_file = str(work / teacher / "results" / "teacher_probs.npz") if teacher else None
            pending.remove(run)
            proc, log = _spawn(run, plan, args, work, teacher_file)
            running[run["name"]] = (proc, log, time.time())
            print(f"[{time.time() - t0:6.0f} s] started {run['name']}", flush=True)
        if time.time() - last_note > 30 and running:
            last_note = time.time()
            print(f"[{time.time() - t0:6.0f} s] epochs done: " +
                  ", ".join(f"{n} {_epochs_done(work / n)}" for n in running), flush=True)
        time.sleep(2)
    report = write_report(out, plan, done, failed, time.time() - t0)
    pack(plan, report, work, out)
    return report


def write_report(out: Path, plan: dict, done: dict, failed: dict, wall_s: float,
                 in_progress: list[str] | None = None) -> dict:
    """Write ``OUT/device_report.json``: the finished runs' summaries, what failed and the plan's
    decision. ``in_progress`` names runs not finished yet: such a report is written after every
    finished run, so what a session has measured survives the session (a CPU session ends, or its
    machine is reset, long before a whole plan is done)."""
    report = {"plan": plan, "done": done, "failed": failed, "decision": decide(plan, done),
              "wall_s": wall_s}
    if in_progress:
        report["in_progress"] = list(in_progress)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "device_report.json.tmp"
    tmp.write_text(json.dumps(report, indent=1, default=str))
    tmp.replace(out / "device_report.json")  # never a half-written report
    return report


def snapshot_report(plan: dict, out: Path, work: Path) -> dict:
    """A report of what a (possibly still running) session has finished so far, read from the run
    folders' ``device_summary.json``; for a runner started before reports were written as it goes."""
    started = [r["name"] for r in plan["runs"] if (work / r["name"]).is_dir()]   # the runs this session started
    summaries = {name: _finished_summary(work / name) for name in started}
    done = {name: s for name, s in summaries.items() if s is not None}
    return write_report(out, plan, done, {}, 0.0, in_progress=[n for n in started if n not in done])


def pack(plan: dict, report: dict, work: Path, out: Path) -> None:
    """What comes back (a returned file may have 16 MiB): the headline group's models as
    separate files, the plan's ``return_models`` in one archive, and every run's records
    (history, metadata, validation probabilities, teacher probabilities, log) in another."""
    winner = report["decision"].get("winner")
    big = [m for m in plan.get("groups", {}).get(winner, []) if m in report["done"]] if winner else []
    for name in big:
        src = work / name / "model" / "inference.keras"
        if src.is_file():
            (out / f"{name}.keras").write_bytes(src.read_bytes())
    with tarfile.open(out / "models.tar", "w") as tar:
        for name in plan.get("return_models", []):
            model = work / name / "model" / "inference.keras"
            if model.is_file():
                tar.add(model, arcname=f"{name}/model/inference.keras")
    with tarfile.open(out / "records.tar.gz", "w:gz") as tar:
        for run_dir in sorted(p for p in work.iterdir() if p.is_dir()):
            for f in sorted((run_dir / "results").glob("*")):
                tar.add(f, arcname=f"{run_dir.name}/results/{f.name}")
        for log in sorted(work.glob("*.log")):
            tar.add(log, arcname=f"logs/{log.name}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--plan", required=True)
    ap.add_argument("--data", help="a data set path or bundle (fer_helpers.data.pack_dataset); needed unless --snapshot")
    ap.add_argument("--out", required=True)
    ap.add_argument("--deadline", type=float, default=None,
                    help="seconds after which running runs are stopped (default: none; a GPU lease passes its limit)")
    ap.add_argument("--parallel", type=int, default=8, help="runs trained at the same time")
    ap.add_argument("--only", help="comma-separated run names to keep from the plan, started in this order "
                                   "(a student still waits for its teacher); an unknown name is refused")
    ap.add_argument("--override", default="{}", help="JSON parameters laid over every run (a smoke test)")
    ap.add_argument("--teacher-from", metavar="RUN_DIR",
                    help="write a finished run's teacher probabilities to WORK/<its plan name>/results first")
    ap.add_argument("--work", help="where the run folders are trained (default: OUT/work); a GPU lease keeps them "
                                   "outside OUT, of which only a few files come back")
    ap.add_argument("--snapshot", action="store_true",
                    help="train nothing: write OUT/device_report.json from the runs finished so far in WORK")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--teacher-file", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.work = args.work or str(Path(args.out) / "work")
    plan = read_plan(args.plan)
    override = json.loads(args.override)
    if args.only:
        plan["runs"] = select_runs(plan, args.only.split(","))
    if args.snapshot:
        report = snapshot_report(plan, Path(args.out), Path(args.work))
        print(f"{args.out}/device_report.json: {len(report['done'])} finished, "
              f"{len(report.get('in_progress', []))} not (yet)")
        return 0
    if not args.data:
        ap.error("--data is required (unless --snapshot)")
    if args.one:
        run = next(r for r in plan["runs"] if r["name"] == args.one)
        train_one(run["name"], {**base_params(plan, run), **override}, args.data, Path(args.work),
                  args.teacher_file)
        return 0
    if args.teacher_from:
        # Student runs in the plan naming a teacher that is not in it read this run's probabilities.
        teachers = {r["teacher"] for r in plan["runs"] if r.get("teacher")} - {r["name"] for r in plan["runs"]}
        if len(teachers) != 1:
            raise SystemExit(f"--teacher-from: the kept runs must name exactly one teacher outside them, got {sorted(teachers)}")
        teacher = teachers.pop()
        teacher_from_run(Path(args.teacher_from), args.data,
                         Path(args.work) / teacher / "results" / "teacher_probs.npz")
        plan["preset_teachers"] = [teacher]
    if override:
        for r in plan["runs"]:
            r["params"] = {**r["params"], **override}
    report = run_plan(plan, args)
    print(json.dumps({"decision": report["decision"], "failed": report["failed"],
                      "wall_s": round(report["wall_s"])}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())

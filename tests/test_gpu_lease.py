"""research/gpu_lease.sh: the data bundle travels to the GPU in two halves (a call carries at
most 64 MiB with the repository) and is joined there only if its checksum holds."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fer_helpers as fh
from conftest import make_ferplus

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "research" / "gpu_lease.sh"


def _lease(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "LEASE_DIR": str(tmp_path / "g"), "LEASE_DATA": str(tmp_path / "joined.npz"),
           "SKIP_WHEELS": "1", "PYTHON": sys.executable, "VENV_PYTHON": sys.executable,
           "OUT": str(tmp_path / "out"), "FER_DATA_DIR": str(tmp_path / "ferplus")}
    (tmp_path / "out").mkdir(exist_ok=True)
    return subprocess.run(["bash", str(SCRIPT), *args], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.skipif(shutil.which("split") is None or shutil.which("sha256sum") is None,
                    reason="needs coreutils' split and sha256sum")
def test_the_bundle_travels_in_two_halves_and_is_joined_only_when_its_checksum_holds(tmp_path):
    make_ferplus(tmp_path / "ferplus", per_split=8)
    done = _lease(tmp_path, "prepare")
    assert done.returncode == 0, done.stderr
    halves = [tmp_path / "g" / "a" / "fertrain.part0", tmp_path / "g" / "b" / "fertrain.part1"]
    assert all(h.stat().st_size > 0 for h in halves)
    assert abs(halves[0].stat().st_size - halves[1].stat().st_size) <= 1
    # Joined on the device: the held-out splits never travel. (The plan is missing on purpose:
    # the join comes first, then device_runs stops with the plan's name.)
    done = _lease(tmp_path, "run", str(tmp_path / "no_plan.json"), "60")
    assert done.returncode != 0 and "no_plan.json" in done.stdout + done.stderr
    data = fh.load_dataset(tmp_path / "joined.npz", label_mode="distribution")
    assert set(np.unique(data.source_split)) == {"FER2013Train"}
    assert len(data) + sum(data.excluded.values()) == 8
    # A damaged half stops before training, naming the checksum file.
    with open(halves[1], "r+b") as f:
        f.seek(10)
        f.write(b"\x00\x01\x02")
    done = _lease(tmp_path, "run", str(tmp_path / "no_plan.json"), "60")
    assert done.returncode == 3 and "does not match its checksum" in done.stderr and "fertrain.sha256" in done.stderr
    # Call 2 on a machine that never saw call 1: the first half is missing.
    shutil.rmtree(tmp_path / "g" / "a")
    done = _lease(tmp_path, "run", str(tmp_path / "no_plan.json"), "60")
    assert done.returncode == 3 and "run 'stage'" in done.stderr

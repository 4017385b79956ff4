"""research/head_rebalance.py: post-hoc rebalancing of a trained model's classifier head."""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import load_research, post_hoc_run

hr = load_research("head_rebalance")


def test_tau_normalisation_leaves_tau_zero_alone_and_equalises_norms_at_one():
    kernel = np.array([[3.0, 0.5], [4.0, 0.0]])          # class norms 5 and 0.5
    assert np.allclose(hr.tau_normalize(kernel, 0.0), kernel)
    assert np.allclose(np.linalg.norm(hr.tau_normalize(kernel, 1.0), axis=0), [1.0, 1.0])


def test_class_weights_balance_classes_fully_at_q_one_and_partly_at_half():
    labels = np.array([0] * 90 + [1] * 10)
    for q, ratio in ((1.0, 9.0), (0.5, 3.0)):
        w = hr.class_weights(labels, 2, q)
        assert w.mean() == pytest.approx(1.0)
        assert w[-1] / w[0] == pytest.approx(ratio)       # (90/10)^q
    w = hr.class_weights(labels, 2, 1.0)
    assert w[labels == 0].sum() == pytest.approx(w[labels == 1].sum())


def test_rule_needs_the_gain_and_the_guard():
    plain = {"accuracy": 0.80, "macro_f1": 0.60}
    scores = {"plain": plain,
              "big gain, accuracy -1 pt": {"accuracy": 0.79, "macro_f1": 0.65},
              "small gain": {"accuracy": 0.80, "macro_f1": 0.603},
              "gain, accuracy -0.4 pt": {"accuracy": 0.796, "macro_f1": 0.61}}
    chosen, lines = hr.choose(scores)
    assert chosen == "gain, accuracy -0.4 pt" and len(lines) == 3
    assert hr.choose({"plain": plain, "small gain": scores["small gain"]})[0] == "plain"


def test_retraining_the_head_with_balanced_weights_lifts_a_rare_class_the_old_head_ignored():
    rng = np.random.default_rng(0)
    n_major, n_minor = 900, 60
    x = np.concatenate([rng.normal(0, 1, (n_major, 4)), rng.normal(0, 1, (n_minor, 4)) + [2.5, 0, 0, 0]])
    y = np.array([0] * n_major + [1] * n_minor)
    targets = np.eye(2, dtype=np.float32)[y]
    kernel = np.array([[0.0, 0.3]] + [[0.0, 0.0]] * 3, dtype=np.float32)
    bias = np.array([3.0, 0.0], dtype=np.float32)          # a head that always says "major"
    assert (hr.softmax(x @ kernel + bias).argmax(1) == 0).all()
    new_kernel, new_bias = hr.retrain_head(x.astype(np.float32), targets, hr.class_weights(y, 2, 1.0),
                                           kernel, bias, epochs=60, learning_rate=0.05, batch_size=128)
    recall_minor = (hr.softmax(x @ new_kernel + new_bias).argmax(1)[y == 1] == 1).mean()
    assert recall_minor > 0.7


@pytest.mark.slow
def test_script_runs_end_to_end_on_demo_data_and_appends_its_verdict(tmp_path):
    run = post_hoc_run(tmp_path, "head", "2026-11-27T04:00:00Z")
    rule, out, table = run["rule"], run["out"], run["table"]
    result = hr.main(run["args"])
    saved = json.loads(out.read_text())
    assert saved["chosen"] == result["chosen"] and saved["chosen"] in saved["candidates"]
    assert set(saved["candidates"]) == {"plain", *(f"tau-norm {t:g}" for t in hr.TAUS),
                                        *(f"cRT q={q:g}" for q in hr.QS)}
    assert set(saved["candidates"]["plain"]) == {"val", "test"}          # the demo layout's own test split
    assert saved["features"]["head_agreement_with_model"] >= 0.999
    text = rule.read_text()
    assert text.startswith("Written 2026-11-27T04:00:00Z") and "=> " in text.splitlines()[-1]
    row = load_research("decision").load_decisions(table).iloc[0]
    assert row["name"] == "head_rebalance" and row["written"] == "2026-11-27T04:00:00Z"
    assert row["decision"] == ("keep" if result["chosen"] == "plain" else "adopt")

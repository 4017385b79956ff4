import json
import shutil
from pathlib import Path

import nbformat
import pytest

from fer_helpers.runner import (
    PROJECT_ROOT,
    RunError,
    RunSpec,
    check_parameters,
    check_pretrained_model,
    export_html,
    load_config,
    notebook_parameters,
    parse_overrides,
    run,
)

NOTEBOOKS = PROJECT_ROOT / "notebooks"


def spec(tmp_path, **kw) -> RunSpec:
    return RunSpec(runs_dir=tmp_path / "runs", figures_dir=tmp_path / "figures",
                   reports_dir=tmp_path / "reports", **kw)


def test_notebooks_are_committed_without_outputs():
    for nb_path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(nb_path, as_version=4)
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, f"{nb_path.name}: needs exactly one parameters cell"
        assert all(not c.get("outputs") and not c.get("execution_count")
                   for c in nb.cells if c.cell_type == "code"), f"{nb_path.name} has outputs"


def test_every_notebook_declares_its_parameters():
    declared = notebook_parameters(NOTEBOOKS / "03_egitim.ipynb")
    for name in ("model_name", "epochs", "batch_size", "learning_rate", "label_mode", "imbalance",
                 "seed", "quick", "targets"):
        assert name in declared, name


def test_unknown_parameter_is_refused():
    declared = {NOTEBOOKS / "01_veri_kesfi.ipynb": notebook_parameters(NOTEBOOKS / "01_veri_kesfi.ipynb")}
    with pytest.raises(RunError, match=r"unknown parameter\(s\) \['epoch'\]"):
        check_parameters({"epoch": 3}, declared)


def test_wrong_parameter_type_is_refused():
    nb = NOTEBOOKS / "03_egitim.ipynb"
    declared = {nb: notebook_parameters(nb)}
    with pytest.raises(RunError, match=r"parameter 'epochs' must be int \(as in 03_egitim.ipynb"):
        check_parameters({"epochs": "many"}, declared)
    check_parameters({"learning_rate": 1}, declared)      # an int is a fine float


def test_overrides_are_typed():
    assert parse_overrides(["epochs=3", "quick=true", "data_dir=/x y", "lr=1e-3"]) == \
        {"epochs": 3, "quick": True, "data_dir": "/x y", "lr": 1e-3}
    with pytest.raises(RunError, match="must look like name=value"):
        parse_overrides(["epochs"])


def test_config_with_unknown_key(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("run_name: x\nparms: {}\n")
    with pytest.raises(RunError, match=r"unknown top-level key\(s\) \['parms'\]"):
        load_config(cfg)


def test_failing_notebook_is_named_with_its_cell(tmp_path):
    with pytest.raises(RunError, match=r"01_veri_kesfi.ipynb: cell \d+ failed with ValueError: label_mode"):
        run(spec(tmp_path, params={"data_dir": "demo", "label_mode": "nonsense"}, notebooks=["01"]))
    # Nothing is published from a failed run.
    assert not (tmp_path / "figures").exists() and not (tmp_path / "reports").exists()


def test_a_notebook_selection_accepts_parameters_of_other_notebooks(tmp_path):
    # epochs belongs to 03; running only 01 with the same config must not fail on it.
    run_dir = run(spec(tmp_path, notebooks=["01"], params={"data_dir": "demo", "epochs": 3}))
    assert (run_dir / "results" / "01_data_summary.json").is_file()


def test_a_given_model_must_be_an_existing_keras_file(tmp_path, monkeypatch):
    onnx = tmp_path / "m_int8.onnx"
    onnx.write_bytes(b"x")
    with pytest.raises(RunError, match=r"m_int8.onnx: pretrained_model must be a .keras file"):
        run(spec(tmp_path, params={"pretrained_model": str(onnx)}, notebooks=["03"]))
    with pytest.raises(RunError, match=r"none.keras: pretrained_model file not found"):
        run(spec(tmp_path, params={"pretrained_model": str(tmp_path / "none.keras")}, notebooks=["03"]))
    with pytest.raises(RunError, match=r"none.keras: compare_model file not found"):
        run(spec(tmp_path, params={"compare_model": str(tmp_path / "none.keras")}, notebooks=["03"]))
    assert not (tmp_path / "runs").exists()          # refused before anything is written
    # A relative path is read from where the command runs (the notebooks run in notebooks/).
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.keras").write_bytes(b"x")
    assert check_pretrained_model("m.keras") == str(tmp_path / "m.keras")


def test_run_name_cannot_escape_the_runs_folder(tmp_path):
    with pytest.raises(RunError, match="must be a plain folder name"):
        run(spec(tmp_path, run_name="../outside", notebooks=["01"]))
    assert not (tmp_path / "outside").exists()


def test_notebook_html_leaves_out_tensorflow_startup_lines_only(tmp_path):
    # TensorFlow 2.21 prints these two lines at import whatever TF_CPP_MIN_LOG_LEVEL says.
    noise = ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
             "I0000 00:00:1795781645.575411   21475 port.cc:153] oneDNN custom operations are on. You may see "
             "slightly different numerical results.\n")
    out = nbformat.v4.new_output
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# Başlık"),
        nbformat.v4.new_code_cell("import tensorflow", outputs=[out("stream", name="stderr", text=noise)]),
        nbformat.v4.new_code_cell("train()", outputs=[out("stream", name="stderr", text=noise + "UserWarning: gerçek uyarı\n"),
                                                     out("stream", name="stdout", text="oneDNN custom operations are on. (stdout)\n")])])
    path = tmp_path / "01_x.ipynb"
    nbformat.write(nb, path)
    before = path.read_bytes()
    export_html([path], tmp_path / "html")
    html = (tmp_path / "html" / "01_x.html").read_text()
    assert "gerçek uyarı" in html and "(stdout)" in html and "Başlık" in html
    assert "absl::InitializeLog" not in html and "port.cc" not in html
    assert path.read_bytes() == before                # the executed notebook keeps every line


@pytest.mark.slow
def test_all_notebooks_run_on_demo_data(demo_run):
    results = demo_run / "results"
    root = demo_run.parents[1]
    for name in ("01_data_summary.json", "02_preprocessing.json", "training.json", "evaluation.json",
                 "gradcam.json", "error_analysis.json", "cross_dataset.json", "run.json"):
        assert (results / name).is_file(), name
    ev = json.loads((results / "evaluation.json").read_text())
    assert ev["is_demo"] and ev["primary"] == "test" and "mcnemar" in ev["protocols"]["test"]
    assert "region_mass" in json.loads((results / "gradcam.json").read_text())
    cross = json.loads((results / "cross_dataset.json").read_text())["datasets"]
    assert cross[0]["layout"] == "folders" and "Contempt" not in cross[0]["shared_classes"]
    assert "Başka veri setlerinde sonuçlar" in (demo_run / "reports" / "rapor.html").read_text()
    human = json.loads((results / "error_analysis.json").read_text())["annotator_baseline"]["test"]
    assert human["n_votes"] > 0 and 0 < human["annotator"]["accuracy"] <= 1
    assert "Tek bir işaretleyiciyle karşılaştırma" in (demo_run / "reports" / "rapor.html").read_text()
    figs = {p.name for p in (root / "figures").glob("*.png")}
    assert {"01_sinif_dagilimi.png", "03_egitim_egrileri.png", "04_guvenilirlik_diyagrami.png",
            "05_gradcam_ornekler.png", "06_isaretleyici_model.png", "06_destek_duyarlilik.png"} <= figs
    assert len(list((root / "reports" / "notebooks").glob("*.html"))) == len(list((PROJECT_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")))
    manifest = json.loads((results / "run.json").read_text())
    assert manifest["status"] == "complete" and manifest["is_demo"]
    assert set(manifest["timings_s"]) == set(manifest["notebooks"]) and "versions" in manifest


@pytest.mark.slow
def test_notebook_intervals_are_the_ones_any_entry_point_computes(demo_run):
    # The model card (benchmarks/train_benchmark.py), the evaluate command and notebook 04 must give the
    # same confidence interval for the same predictions, whatever seed the run trained with: the
    # bootstrap resamples with the package's fixed default seed, not the run's.
    import numpy as np

    from fer_helpers.evaluation import score_probabilities

    ev = json.loads((demo_run / "results" / "evaluation.json").read_text())
    arrays = np.load(demo_run / "results" / "predictions.npz")
    for name, entry in ev["protocols"].items():
        ci = entry["plain"]["ci"]
        again = score_probabilities(arrays[f"{name}__labels"], arrays[f"{name}__probs"], ev["classes"],
                                    n_boot=ci["n_boot"])["ci"]
        assert again == ci, name


def make_real_slice(src: Path, dst: Path, per_split: int = 60) -> Path:
    """The first ``per_split`` rows of each FER+ split, copied into a tmp tree."""
    for split in ("FER2013Train", "FER2013Valid", "FER2013Test"):
        (dst / split).mkdir(parents=True)
        rows = (src / split / "label.csv").read_text().splitlines()[:per_split]
        (dst / split / "label.csv").write_text("\n".join(rows) + "\n")
        for row in rows:
            shutil.copy(src / split / row.split(",")[0], dst / split)
    return dst


@pytest.mark.slow
@pytest.mark.realdata
def test_notebooks_01_to_03_on_a_real_data_slice(tmp_path, ferplus_dir):
    data = make_real_slice(ferplus_dir, tmp_path / "slice", per_split=120)
    run_dir = run(spec(tmp_path, run_name="real_slice", notebooks=["01", "02", "03"], params={
        "data_dir": str(data), "quick": True, "val_fraction": 0.2}))
    summary = json.loads((run_dir / "results" / "01_data_summary.json").read_text())
    assert summary["layout"] == "ferplus" and not summary["is_demo"]
    assert summary["validation"] == "from_train(0.2)"
    training = json.loads((run_dir / "results" / "training.json").read_text())
    assert training["test_split_used"] is False and training["epochs_run"] >= 1


@pytest.mark.parametrize("config", sorted((PROJECT_ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_names_only_declared_parameters(config):
    params = load_config(config)["params"]
    assert params
    # Raises on a name no notebook declares or a value of the wrong type.
    check_parameters(params, {p: notebook_parameters(p) for p in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))})


@pytest.mark.slow
def test_executed_notebooks_show_every_figure_they_save(demo_run):
    """A reader of an executed notebook (or its HTML) sees each figure where it is made."""
    import nbformat

    executed = demo_run / "reports" / "executed"
    images = 0
    for nb in sorted(executed.glob("*.ipynb")):
        for cell in nbformat.read(nb, as_version=4).cells:
            images += sum("image/png" in out.get("data", {}) for out in cell.get("outputs", []))
    saved = len(list((demo_run / "figures").glob("*.png")))
    assert saved > 0 and images >= saved


def test_notebook_html_works_offline_with_formulas_as_mathml(tmp_path):
    import re

    from fer_helpers.runner import export_html

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("Ölçek: $x' = x / 255$ ve\n\n$$L^c = \\mathrm{ReLU}\\left(\\sum_k \\alpha_k^c A^k\\right)$$"),
                nbformat.v4.new_code_cell("print('fiyat $5 ve $6')")]
    path = tmp_path / "05_x.ipynb"
    nbformat.write(nb, path)
    export_html([path], tmp_path / "html")
    html = (tmp_path / "html" / "05_x.html").read_text(encoding="utf-8")
    external = re.findall(r'(?:src|href)="(https?://[^"]+)"', html)
    assert external == []
    assert html.count("<math") == 2 and 'display="block"' in html
    assert "fiyat $5 ve $6" in html             # dollars in code are not formulas


def test_run_from_an_installed_copy_without_notebooks_says_what_it_needs(monkeypatch, tmp_path, capsys):
    import fer_helpers.__main__ as cli

    monkeypatch.setattr(cli, "PROJECT_ROOT", tmp_path)
    assert cli.main(["run"]) == 1
    assert "installed copy of fer_helpers" in capsys.readouterr().err

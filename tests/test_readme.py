"""The README's results table agrees with the committed result files it quotes."""
import csv
import json
import re
from pathlib import Path

from fer_helpers.report import LITERATURE, fmt_num, fmt_pct

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"


def readme_rows() -> dict[str, list[str]]:
    """The results table's rows, by their first cell: the remaining cells."""
    rows = {}
    for line in (ROOT / "README.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) == 5 and not set(cells[0]) <= set("-"):
            rows[cells[0]] = cells[1:]
    return rows


def row(start: str) -> list[str]:
    matches = [cells for name, cells in readme_rows().items() if name.startswith(start)]
    assert len(matches) == 1, f"README results table: no single row starting {start!r}"
    return matches[0]


def test_a_newcomer_reads_it_in_five_minutes():
    """At most 200 lines, and no research history: that goes to docs/research_log.md."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 200
    assert not re.search(r"^#+ .*20[0-9]{2}-[01][0-9]-[0-3][0-9]", text, flags=re.M)   # no dated entries


def test_the_table_has_at_most_six_rows():
    assert 4 <= len(readme_rows()) - 1 <= 6          # the header row is not a result


def seed_cells(summary: str) -> list[str]:
    """A results row as a seed summary writes it: mean ± std over the seeds."""
    seeds = json.loads((RESULTS / summary).read_text())["protocols"]
    ps, pf = seeds["P-seed"], seeds["P-FER+"]
    return [f"{fmt_pct(ps['accuracy']['mean'])} ± {fmt_num(100 * ps['accuracy']['std'], 2)}",
            f"{fmt_num(ps['macro_f1']['mean'])} ± {fmt_num(ps['macro_f1']['std'])}",
            f"{fmt_num(ps['recall']['Contempt']['mean'])} / {fmt_num(ps['recall']['Disgust']['mean'])}",
            f"{fmt_pct(pf['accuracy']['mean'])} ± {fmt_num(100 * pf['accuracy']['std'], 2)}"]


def test_the_released_model_row_is_its_seed_summary_and_the_card_says_so():
    assert row("Yayımlanan model") == seed_cells("seeds_summary_resnet_w16.json")
    card = json.loads((ROOT / "models" / "reference.card.json").read_text())
    assert (card["architecture"], card["training"]["params"]["width"]) == ("resnet", 16)
    assert "**resnet** (width 16), 703,320 parameters" in (ROOT / "models" / "reference.md").read_text()
    assert sorted(card["seeds"]["runs"]) == sorted(json.loads((RESULTS / "seeds_summary_resnet_w16.json").read_text())["runs"])


def test_the_previous_released_model_row_is_its_seed_summary():
    assert row("VGG-Orta, önceki yayımlanan model") == seed_cells("seeds_summary.json")
    card = json.loads((ROOT / "models" / "vgg_mid.card.json").read_text())
    assert card["architecture"] == "vgg_mid" and card["seeds"]["seeds"] == [42, 43, 44]


def test_the_reproduction_and_single_annotator_rows_are_the_result_files():
    with (RESULTS / "ablation.csv").open() as f:
        e60 = next(r for r in csv.DictReader(f) if r["run"] == "baseline_e60_s42")
    assert row("Temel model, bu depoda yeniden üretim (60 epok")[:2] == [
        fmt_pct(float(e60["P_seed_accuracy"])), fmt_num(float(e60["P_seed_macro_f1"]))]
    assert row("Temel model")[3] == fmt_pct(float(e60["P_FERplus_accuracy"]))
    human = json.loads((RESULTS / "runs" / "vgg_mid_bf16_s42_report" / "error_analysis.json").read_text())["annotator_baseline"]
    seed, ferplus = human["P-seed"]["annotator"], human["P-FER+"]["annotator"]
    assert row("Tek bir işaretleyici") == [
        fmt_pct(seed["accuracy"]), fmt_num(seed["macro_f1"]),
        f"{fmt_num(seed['recall']['Contempt'])} / {fmt_num(seed['recall']['Disgust'])}", fmt_pct(ferplus["accuracy"])]


def test_the_published_rows_are_the_reports_literature():
    study = LITERATURE[0]
    assert row("Başlangıç çalışması")[:2] == [fmt_pct(study["accuracy"], 1), fmt_num(study["macro_f1"], 2)]
    ferplus = [r["accuracy"] for r in LITERATURE if r["protocol"] == "P-FER+"]
    assert row("FER+ VGG13")[3] == f"{fmt_pct(min(ferplus))} – {fmt_pct(max(ferplus))}"


def test_the_readme_charts_are_drawn_from_the_result_files_and_hold_no_pixels(tmp_path):
    """docs/img/*.svg (research/readme_charts.py): their numbers are the committed results', the
    README shows both, and neither embeds a raster image (no face can hide in them)."""
    from research import readme_charts as rc

    seeds = json.loads((RESULTS / "seeds_summary_resnet_w16.json").read_text())["protocols"]
    released = next(r for r in rc.accuracy_rows() if r["label"].startswith("Yayımlanan model"))
    assert released["P-seed"] == seeds["P-seed"]["accuracy"]["mean"] and released["std"]["P-FER+"] == seeds["P-FER+"]["accuracy"]["std"]
    study = next(r for r in rc.accuracy_rows() if r["label"] == "Başlangıç çalışması")
    assert study["P-seed"] == LITERATURE[0]["accuracy"]
    recall = rc.recall_rows()
    assert recall["Temel model, yeniden üretim"]["Contempt"] == recall["Temel model, yeniden üretim"]["Disgust"] == 0.0
    assert recall["Yayımlanan model (ResNet-18, 3 tohum)"]["Contempt"] == seeds["P-seed"]["recall"]["Contempt"]["mean"]
    vgg = json.loads((RESULTS / "seeds_summary.json").read_text())["protocols"]["P-seed"]["recall"]
    assert recall["VGG-Orta (3 tohum)"]["Disgust"] == vgg["Disgust"]["mean"]
    written = rc.main(["--out", str(tmp_path)])
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for path in written:
        committed = ROOT / "docs" / "img" / path.name
        assert f"(docs/img/{path.name})" in readme and committed.is_file()
        for svg in (path, committed):
            assert "<image" not in svg.read_text(encoding="utf-8")

"""environment.yml installs the project through pip (pyproject.toml is the one list of
dependencies), and that list is what the package and its tests import."""
import importlib.util
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
_FIND_SPEC = importlib.util.find_spec


def test_environment_yml_installs_the_project_instead_of_repeating_its_pins():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert pip_section == ['-e ".[test]"']
    assert "python=3.11" in env["dependencies"]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "test" in project["optional-dependencies"] and "jax" in project["optional-dependencies"]
    assert project["requires-python"].startswith(">=3.11")


def test_configs_say_what_they_are_for_in_a_few_lines():
    for path in sorted((ROOT / "configs").glob("*.yaml")):
        comments = [line for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("#")]
        assert 1 <= len(comments) <= 5, f"{path.name}: {len(comments)} comment lines (history goes to docs/)"


def test_optional_libraries_sit_in_the_extra_the_error_message_names():
    from fer_helpers.artifacts import OPTIONAL

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert {"report", "export", "lab", "jax", "test", "all"} <= set(extras)
    for module, extra in OPTIONAL.items():
        assert any(req.split(">")[0].split("=")[0] == module for req in extras[extra]), (module, extra)
    assert "fer_helpers[all]" in extras["test"] and extras["all"] == ["fer_helpers[report,export,lab]"]


def hide_library(monkeypatch, name: str) -> None:
    """Make ``importlib.util.find_spec`` report ``name`` (only) as not installed."""
    monkeypatch.setattr(importlib.util, "find_spec", lambda mod, *a: None if mod == name else _FIND_SPEC(mod, *a))


def test_a_missing_optional_library_is_named_with_its_extra_before_any_work(monkeypatch, tmp_path):
    import pytest

    from fer_helpers.artifacts import MissingDependency
    from fer_helpers.runner import RunSpec, run

    hide_library(monkeypatch, "weasyprint")
    spec = RunSpec(run_name="x", runs_dir=tmp_path / "runs", publish=False)
    with pytest.raises(MissingDependency, match=r"weasyprint.*fer_helpers\[report\]"):
        run(spec)
    assert not (tmp_path / "runs").exists()           # nothing started, nothing to clean up
    # Without the report notebook in the selection the PDF renderer is not needed.
    hide_library(monkeypatch, "nbconvert")
    with pytest.raises(MissingDependency, match=r"nbconvert.*\[report\]"):
        run(RunSpec(run_name="x", notebooks=["01"], runs_dir=tmp_path / "runs", publish=False))


def test_the_export_command_names_its_extra(monkeypatch, capsys):
    from fer_helpers.__main__ import main

    hide_library(monkeypatch, "tf2onnx")
    assert main(["export", "--out", "unused"]) == 1
    assert "fer_helpers[export]" in capsys.readouterr().err

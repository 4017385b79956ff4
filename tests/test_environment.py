"""environment.yml installs the project through pip (pyproject.toml is the one list of
dependencies), and that list is what the package and its tests import."""
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


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

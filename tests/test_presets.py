"""The trial presets in ``examples/``: each cites its source, names a primary endpoint and runs."""

import json
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cartsim.cli import app
from cartsim.trial.config import load_config
from cartsim.trial.summary import KINDS

runner = CliRunner()
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PRESETS = sorted(EXAMPLES.glob("*.toml"))
SOURCED = [p for p in PRESETS if p.name != "quick.toml"]   # presets of real trials


def test_presets_of_the_real_trials_are_there():
    assert {p.stem for p in SOURCED} >= {"opera", "oratorio", "kysa7", "ucsf-kyv101-phase1", "eque-cel-pms",
                                         "erlangen-sle", "zuma1"}


@pytest.mark.parametrize("path", SOURCED, ids=lambda p: p.stem)
def test_preset_cites_its_trial_and_names_a_primary_endpoint(path):
    text = path.read_text()
    header = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    assert "NCT0" in header or "et al." in header or "release of" in header   # a registry, a paper or a dated release
    assert f"cartsim trial examples/{path.name}" in header
    raw = tomllib.loads(text)
    assert raw["trial"]["primary_endpoint"] in KINDS
    if len(raw["arm"]) > 1:
        assert f"cartsim power examples/{path.name}" in header


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.stem)
def test_preset_runs(tmp_path, path):
    cfg = load_config(path)
    out = tmp_path / path.stem
    r = runner.invoke(app, ["trial", str(path), "--out", str(out), "--n", "3"])
    assert r.exit_code == 0, r.output
    summary = json.loads((out / "summary.json").read_text())
    assert [a["name"] for a in summary["arms"]] == [a.name for a in cfg.arm]
    assert all(a["n"] == 3 for a in summary["arms"])
    assert (out / "report.html").stat().st_size > 0

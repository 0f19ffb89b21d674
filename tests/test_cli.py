"""The command line: outputs, and bad input that must fail cleanly (exit 2, one line, nothing written)."""

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cartsim.cli import app

runner = CliRunner()


def test_simulate_sle_writes_outputs_and_shapes(tmp_path):
    out = tmp_path / "sle"
    r = runner.invoke(app, ["simulate", "--therapy", "mb-cart19", "--disease", "sle", "--days", "365",
                            "--out", str(out)])
    assert r.exit_code == 0, r.output
    df = pd.read_parquet(out / "trajectories.parquet")
    assert (out / "figure.png").stat().st_size > 10_000
    summary = json.loads((out / "summary.json").read_text())
    assert summary["endpoints"]["crs_max_grade"] in (0, 1)
    day7 = df.loc[(df.day - 7).abs().idxmin()]
    assert day7.b_blood_per_uL < 1.0                      # depleted within a week
    peak_day = df.loc[df.car_blood_per_uL.idxmax(), "day"]
    assert 7 <= peak_day <= 14                            # CAR-T peaks in the second week
    assert df.day.iloc[-1] == 365


def test_simulate_antibody_says_what_did_not_happen(tmp_path):
    """Regression: without CAR-T cells or a fall below 1 cell/uL the console said 'on day nan'."""
    r = runner.invoke(app, ["simulate", "--therapy", "untreated", "--disease", "ms", "--days", "30",
                            "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert "nan" not in r.output
    assert "B cells did not fall below 1/uL" in r.output and "no CAR-T cells in blood" in r.output
    endpoints = json.loads((tmp_path / "summary.json").read_text())["endpoints"]
    assert endpoints["bcell_reappearance_day"] is None and endpoints["cart_tmax_day"] is None


def test_csv_format(tmp_path):
    r = runner.invoke(app, ["simulate", "--therapy", "kyv-101", "--disease", "ms", "--days", "30",
                            "--format", "csv", "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    csv = pd.read_csv(tmp_path / "trajectories.csv")
    r = runner.invoke(app, ["simulate", "--therapy", "kyv-101", "--disease", "ms", "--days", "30",
                            "--out", str(tmp_path / "parquet")])
    assert r.exit_code == 0, r.output
    parquet = pd.read_parquet(tmp_path / "parquet" / "trajectories.parquet")
    # the same table in either format, to the digits CSV keeps
    assert list(csv.columns) == list(parquet.columns) and len(csv) == len(parquet)
    np.testing.assert_allclose(csv.to_numpy(float), parquet.to_numpy(float), rtol=1e-12, atol=0)


@pytest.mark.parametrize("args, field, allowed", [
    (["--therapy", "foo"], "--therapy", "mb-cart19"),
    (["--therapy", "mb-cart19", "--disease", "flu"], "--disease", "sle"),
    (["--therapy", "mb-cart19", "--dose", "-1e6 cells/kg"], "--dose", "cells/kg"),
    (["--therapy", "mb-cart19", "--dose", "lots"], "--dose", "cells/kg"),
    (["--therapy", "mb-cart19", "--days", "0"], "--days", ">= 1"),
    (["--therapy", "mb-cart19", "--days", "ten"], "--days", ">= 1"),
    (["--therapy", "mb-cart19", "--lymphodepletion", "heavy"], "--lymphodepletion", "autoimmune-erlangen"),
])
def test_bad_input_is_one_clear_line(tmp_path, args, field, allowed):
    out = tmp_path / "never"
    r = runner.invoke(app, ["simulate", *args, "--out", str(out)])
    assert r.exit_code == 2
    lines = [ln for ln in r.output.strip().splitlines() if ln]
    assert len(lines) == 1 and lines[0].startswith(f"error: {field}:") and allowed in lines[0]
    assert not out.exists()


def test_unwritable_out(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = runner.invoke(app, ["simulate", "--therapy", "mb-cart19", "--out", str(blocker / "sub")])
    assert r.exit_code == 2 and "error: --out:" in r.output
    assert blocker.read_text() == "x"


def test_parameters_json_lists_every_parameter_with_provenance():
    r = runner.invoke(app, ["parameters", "--json"])
    assert r.exit_code == 0
    rows = json.loads(r.output)
    from cartsim.model import load_table

    assert [row["name"] for row in rows if "[" not in row["name"]] == [p.name for p in load_table()]
    for row in rows:
        assert row["kind"] in ("literature", "derived", "calibrated", "assumed"), row
        assert row["source"].strip() and row["unit"].strip(), row


@pytest.mark.parametrize("command", ["simulate", "compare", "fit"])
def test_option_help_names_every_product_drug_disease_and_regimen(command):
    """Regression: the --therapy and --disease help was written by hand and named neither the products added later
    (descartes-08, liso-cel), nor inebilizumab, nor the diseases nmosd, mg and mg-musk."""
    from cartsim.disease import diseases
    from cartsim.therapy.antibodies import antibodies
    from cartsim.therapy.products import lymphodepletion_regimens, products

    r = runner.invoke(app, [command, "--help"], env={"COLUMNS": "400"}, terminal_width=400)
    assert r.exit_code == 0
    text = " ".join(r.output.split())
    options = {"--therapy": [*products(), *antibodies()], "--disease": list(diseases()),
               "--lymphodepletion": list(lymphodepletion_regimens())}
    shown = [o for o in options if o in text]
    assert "--disease" in shown
    for option in shown:
        for name in options[option]:
            assert name in text, (command, option, name)


def test_simulate_says_b_cells_are_not_back_when_the_run_ends_first(tmp_path):
    """Regression: a patient whose B cells had not come back by the end read 'reappear on day 180 (censored)', as if
    they came back on the last day."""
    r = runner.invoke(app, ["simulate", "--therapy", "liso-cel", "--disease", "lbcl", "--days", "60",
                            "--out", str(tmp_path / "short")], terminal_width=200)
    assert r.exit_code == 0, r.output
    assert "not back by day 60, the end of the simulation" in r.output and "censored" not in r.output
    r = runner.invoke(app, ["simulate", "--therapy", "mb-cart19", "--disease", "sle", "--days", "365",
                            "--out", str(tmp_path / "long")], terminal_width=200)
    day = json.loads((tmp_path / "long" / "summary.json").read_text())["endpoints"]["bcell_reappearance_day"]
    assert f"back (1/uL or more) on day {day:g}" in r.output

"""``cartsim compare``: two therapies side by side (API, figure, files, and bad input)."""

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from cartsim.cli import app
from cartsim.compare import Comparison, compare
from cartsim.model import build_model
from cartsim.therapy import antibodies

runner = CliRunner()


@pytest.fixture(scope="module")
def cmp() -> Comparison:
    return compare("kyv-101", "ocrelizumab", "ms", 1095)


def test_one_infusion_versus_repeated_antibody(cmp):
    kyv, ocr = cmp.results
    assert cmp.therapies == ("kyv-101", "ocrelizumab") and cmp.days == 1095
    # six-monthly ocrelizumab keeps blood B cells depleted for the whole horizon
    b = ocr.trajectories.query("day >= 14 and day <= 1095").b_blood_per_uL
    assert b.max() < 10.0
    # after one kyv-101 infusion B cells go, then come back, mostly naive
    f = cmp.summary()["therapies"][0]["facts"]
    assert f["bcells_below_1_per_uL_day"] is not None and f["bcells_below_1_per_uL_day"] < 14
    assert 60 <= f["bcell_reappearance_day"] <= 180
    assert f["naive_share_at_reappearance"] > 0.8
    assert kyv.trajectories.b_blood_per_uL.iloc[-1] > 80.0
    # dosing: one infusion versus the regimen's administrations (300 mg on days 0 and 14, then every 24 weeks)
    regimen = antibodies()["ocrelizumab"].doses(1095)
    assert len(kyv.dosing) == 1
    assert [d for d, _ in ocr.dosing] == [d.day for d in regimen] == [0, 14, 168, 336, 504, 672, 840, 1008]
    assert [a["facts"]["administrations"] for a in cmp.summary()["therapies"]] == [1, len(regimen)]


def test_summary_is_plain_json(cmp):
    s = json.loads(json.dumps(cmp.summary(), allow_nan=False))
    a, b = s["therapies"]
    assert (a["therapy"], b["therapy"]) == ("kyv-101", "ocrelizumab")
    assert b["endpoints"]["cart_peak_per_uL"] == 0 and a["endpoints"]["bcell_repletion_after_last_dose_week"] is None
    assert len(b["dosing"]) == b["facts"]["administrations"] and "mg" in b["dosing"][0]["what"]
    traj = cmp.trajectories
    assert list(traj.columns[:3]) == ["arm", "therapy", "day"]
    assert set(traj.therapy) == {"kyv-101", "ocrelizumab"}


def test_same_therapy_twice(tmp_path):
    c = compare("untreated", "untreated", "ms", 30)
    assert [a["label"] for a in c.summary()["therapies"]] == ["untreated (A)", "untreated (B)"]
    assert (tmp_path / "compare.png") in c.write(tmp_path, "csv")
    assert set(pd.read_csv(tmp_path / "trajectories.csv").arm) == {"A", "B"}


def test_cli_writes_figure_and_summary(tmp_path):
    out = tmp_path / "cmp"
    r = runner.invoke(app, ["compare", "kyv-101", "ocrelizumab", "--disease", "ms", "--days", "1095",
                            "--out", str(out)])
    assert r.exit_code == 0, r.output
    png = (out / "compare.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 20_000
    assert (out / "compare.svg").read_text().lstrip().startswith("<?xml")
    summary = json.loads((out / "summary.json").read_text())
    assert [a["therapy"] for a in summary["therapies"]] == ["kyv-101", "ocrelizumab"]
    assert summary["disease"] == "ms" and summary["days"] == 1095
    df = pd.read_parquet(out / "trajectories.parquet")
    assert set(df.therapy) == {"kyv-101", "ocrelizumab"} and df.day.max() == 1095
    assert sorted(p.name for p in out.iterdir()) == ["compare.png", "compare.svg", "summary.json",
                                                     "trajectories.parquet"]


@pytest.mark.parametrize("args, field, allowed", [
    (["foo", "ocrelizumab"], "THERAPY_A", "kyv-101"),
    (["kyv-101", "ocrelizumab-xl"], "THERAPY_B", "ocrelizumab"),
    (["kyv-101", "ocrelizumab", "--days", "0"], "--days", ">= 1"),
    (["kyv-101", "ocrelizumab", "--days", "ten"], "--days", ">= 1"),
    (["kyv-101", "ocrelizumab", "--disease", "flu"], "--disease", "ms"),
])
def test_bad_input_is_one_clear_line(tmp_path, args, field, allowed):
    out = tmp_path / "never"
    r = runner.invoke(app, ["compare", *args, "--out", str(out)])
    assert r.exit_code == 2
    lines = [ln for ln in r.output.strip().splitlines() if ln]
    assert len(lines) == 1 and lines[0].startswith(f"error: {field}:") and allowed in lines[0], r.output
    assert not out.exists()


def test_unwritable_out(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = runner.invoke(app, ["compare", "kyv-101", "ocrelizumab", "--out", str(blocker / "sub")])
    assert r.exit_code == 2 and r.output.startswith("error: --out:")
    assert blocker.read_text() == "x" and sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_each_drug_level_has_its_own_panel_and_the_autoantibody_is_drawn(tmp_path, monkeypatch):
    """Regression: the drug panel drew every regimen drug as the anti-CD20 antibody's serum level, so
    efgartigimod (and interferon) showed a flat zero line labelled 'antibody'; and the autoantibody, which
    separates a lasting CAR-T effect from a transient FcRn blockade, was not drawn."""
    import cartsim.outputs.compare as figure

    drawn = []
    monkeypatch.setattr(figure, "save_figure", lambda fig, path, svg=False: drawn.append(fig))
    c = compare("mb-cart19", "efgartigimod", "sle", 120)
    c.write(tmp_path, "csv")
    labels = [ax.get_ylabel() for ax in drawn[0].axes]
    assert labels[1:5] == ["CAR-T cells in blood\n(cells/µL)", "FcRn blocker in blood\n(µg/mL)",
                           "total IgG\n(g/L)", "anti-dsDNA antibody\n(% of baseline)"]
    level = drawn[0].axes[2].get_lines()[0].get_ydata()
    assert max(level) > 30                                       # efgartigimod's own level, ug/mL
    auto = {ln.get_label(): ln.get_ydata() for ln in drawn[0].axes[4].get_lines()}
    assert min(auto["efgartigimod"]) < 45 and auto["efgartigimod"][-1] > 90     # back within weeks
    assert auto["mb-cart19"][-1] < 60                                            # still falling
    healthy = compare("ocrelizumab", "interferon-beta-1a", "healthy", 60)
    healthy.write(tmp_path / "h", "csv")
    labels = [ax.get_ylabel() for ax in drawn[1].axes]
    assert "autoantibody\n(% of baseline)" not in labels                       # no autoantibody in health
    assert labels[1] == "anti-CD20 antibody in blood\n(µg/mL)" and len(labels) == 4   # interferon has no level


def test_nmosd_and_mg_panels_name_the_drug_class_and_the_disease_antibody(tmp_path, monkeypatch):
    """Regression: inebilizumab's level was labelled 'anti-CD20 antibody' (it is anti-CD19), the autoantibody
    panel did not say which antibody (AQP4-IgG, anti-AChR), and a long disease name ran the title off both
    edges of the figure."""
    import cartsim.outputs.compare as figure

    drawn = []
    monkeypatch.setattr(figure, "save_figure", lambda fig, path, svg=False: drawn.append(fig))
    compare("eque-cel", "inebilizumab", "nmosd", 120).write(tmp_path / "n", "csv")
    compare("descartes-08", "efgartigimod", "mg", 120).write(tmp_path / "m", "csv")
    nmosd, mg = ([ax.get_ylabel() for ax in fig.axes] for fig in drawn)
    assert "anti-CD19 antibody in blood\n(µg/mL)" in nmosd and "AQP4-IgG\n(% of baseline)" in nmosd
    assert not any("anti-CD20" in label for label in nmosd)
    assert "anti-AChR antibody\n(% of baseline)" in mg
    for fig in drawn:
        title = fig._suptitle.get_text()
        assert max(len(line) for line in title.splitlines()) <= 110
        fig.canvas.draw()
        box = fig._suptitle.get_window_extent()
        assert box.x0 >= 0 and box.x1 <= fig.bbox.width              # the title fits inside the figure


def test_mg_comparison_draws_the_mg_adl_score_and_the_complement_inhibitor(tmp_path, monkeypatch):
    """A comparison in myasthenia gravis drew the antibody but not the MG-ADL score, the outcome people with MG
    ask about; it has its own panel now (NMOSD and MS have none). Ravulizumab leaves the antibody alone and
    lowers the score a little; KYV-101 lowers both, the score much more by month 6."""
    import cartsim.outputs.compare as figure

    drawn = []
    monkeypatch.setattr(figure, "save_figure", lambda fig, path, svg=False: drawn.append(fig))
    compare("kyv-101", "ravulizumab", "mg", 182).write(tmp_path / "m", "csv")
    compare("eque-cel", "inebilizumab", "nmosd", 60).write(tmp_path / "n", "csv")
    mg, nmosd = ([ax.get_ylabel() for ax in fig.axes] for fig in drawn)
    assert "complement C5\ninhibitor in blood\n(µg/mL)" in mg
    assert "MG-ADL score\n(0 none to 24)" in mg and not any("MG-ADL" in label for label in nmosd)
    panel = drawn[0].axes[mg.index("MG-ADL score\n(0 none to 24)")]
    adl = {ln.get_label(): ln.get_ydata() for ln in panel.get_lines() if ln.get_label() in ("kyv-101", "ravulizumab")}
    anti = {ln.get_label(): ln.get_ydata() for ln in drawn[0].axes[mg.index("anti-AChR antibody\n(% of baseline)")]
            .get_lines() if ln.get_label() in ("kyv-101", "ravulizumab")}
    assert adl["kyv-101"][0] == pytest.approx(9.0) and adl["ravulizumab"][0] == pytest.approx(9.0)
    # the typical patient owes a typical (median) share of the damage to complement: ravulizumab helps a little
    share = build_model().table.value("mg_complement_odds")
    share /= 1 + share
    assert 9.0 * (1 - share) < adl["ravulizumab"][-1] < 9.0 - 0.1 and adl["kyv-101"][-1] < 4.0
    assert min(anti["ravulizumab"]) == pytest.approx(100.0) and anti["kyv-101"][-1] < 20

"""``cartsim trial``: configuration errors, determinism, resuming, Dask, summary statistics, failures."""

import json
import re

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cartsim.cli import app
from cartsim.disease import CourseMix
from cartsim.errors import CartsimInputError
from cartsim.population import Population
from cartsim.trial import cohort
from cartsim.trial.config import EDSS_STEPS, parse_config
from cartsim.trial.run import execute, prepare
from cartsim.stats import kaplan_meier, mean_ci, mean_interval, wilson

Z95 = 1.959963984540054   # standard normal 97.5th percentile
from cartsim.trial.summary import KINDS, endpoint

runner = CliRunner()

CONFIG = """\
[trial]
name = "test"
seed = 11
horizon_days = {horizon}

[population]
n = {n}
disease = "{disease}"
age = [30, 40]

[[arm]]
name = "KYV-101"
therapy = "kyv-101"
dose = "1e8 cells"

[[arm]]
name = "no treatment"
therapy = "untreated"
"""


def config(n: int = 20, horizon: int = 40, disease: str = "sle", **replace: str) -> str:
    text = CONFIG.format(n=n, horizon=horizon, disease=disease)
    for old, new in replace.items():
        text = text.replace(old, new)
    return text


def run(tmp_path, name: str, text: str | None = None, **options):
    out = tmp_path / name
    result = execute(prepare(parse_config(text or config()), out, **options))
    return out, result


def patients(out) -> pd.DataFrame:
    return pd.read_parquet(out / "patients.parquet")


# ---- configuration -----------------------------------------------------------------------------

def error(text: str) -> str:
    with pytest.raises(CartsimInputError) as err:
        parse_config(text, "t.toml")
    return str(err.value)


def test_unknown_therapy_names_field_value_allowed_and_line():
    text = config(**{'therapy = "untreated"': 'therapy = "natalizumab"'})
    msg = error(text)
    line = 1 + text.splitlines().index('therapy = "natalizumab"')
    assert msg.startswith("arm[1].therapy: unknown therapy 'natalizumab'")
    assert f"t.toml line {line}" in msg and re.search(r"allowed: .*kyv-101.*mb-cart19.*untreated", msg)


@pytest.mark.parametrize("old, new, expected", [
    ("n = 20", "n = -3", ["population.n", "-3", ">= 1", "line 7"]),
    ("seed = 11", "seed = 11\ncolour = 1", ["trial.colour", "unknown key", "allowed: name, seed, horizon_days",
                                            "line 4"]),
    ('disease = "sle"', 'disease = "flu"', ["population.disease", "'flu'", "allowed: b-all, healthy"]),
    ('dose = "1e8 cells"', 'dose = "lots"', ["arm[0].dose", "'lots'", "cells/kg", "line 14"]),
    ('dose = "1e8 cells"', 'regimen = "600 mg every 24 weeks"', ["arm[0].regimen", "CAR-T product"]),
    ('age = [30, 40]', 'age = [40, 30]', ["population.age", "low <= high"]),
    ('age = [30, 40]', 'ms_course = "ppms"', ["population.ms_course", "disease = 'ms'"]),
    ('name = "no treatment"', 'name = "KYV-101"', ["arm[1].name", "duplicate"]),
    ('age = [30, 40]', 'ms_course = ["ppms", "cis"]', ["population.ms_course", "one of rrms, spms, ppms", "line 9"]),
    ('age = [30, 40]', 'ms_course = []', ["population.ms_course", "a list of them"]),
    ('age = [30, 40]', 'ms_course = {ppms = 0}', ["population.ms_course", "share must be a number > 0"]),
    ('age = [30, 40]', 'ms_course = ["spms", "spms"]', ["population.ms_course", "each once"]),
])
def test_bad_config_is_one_clear_line(old, new, expected):
    msg = error(config(**{old: new}))
    assert "\n" not in msg
    for part in expected:
        assert part in msg, msg


def test_cli_bad_input_exit_2_and_writes_nothing(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(config(**{"n = 20": "n = 0"}))
    for args in ([str(cfg)], [str(tmp_path / "missing.toml")], [str(cfg), "--n", "5", "--workers", "x"]):
        out = tmp_path / "never"
        r = runner.invoke(app, ["trial", *args, "--out", str(out)])
        lines = [ln for ln in r.output.splitlines() if ln.strip()]
        assert r.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), r.output
        assert not out.exists()


def test_mixed_course_population_from_config():
    text = config(disease="ms", **{"age = [30, 40]": 'ms_course = {ppms = 1, spms = 1}'})
    cfg = parse_config(text)
    assert cfg.population.courses == CourseMix((("ppms", 0.5), ("spms", 0.5)))
    assert cfg.scenario(0).course == cfg.population.courses
    from cartsim.model import build_model
    cov = cohort.draw(cfg, build_model(), 1, 0, 200).covariates
    assert 80 < (cov.ms_course == "ppms").sum() < 120 and set(cov.ms_course) == {"ppms", "spms"}
    one = parse_config(config(disease="ms", **{"age = [30, 40]": 'ms_course = ["spms"]'}))
    assert one.population.courses == "spms"


def test_mixed_course_trial_reports_each_course(tmp_path):
    text = config(n=12, disease="ms", **{"age = [30, 40]": 'ms_course = ["ppms", "rrms"]'})
    out, _ = run(tmp_path, "mixed", text, validation=False)
    s = json.loads((out / "summary.json").read_text())
    table = patients(out)
    for a, arm in enumerate(s["arms"]):
        rows = table[table["arm"] == a]
        assert arm["n_by_ms_course"] == rows["ms_course"].value_counts().to_dict()
        assert set(arm["by_ms_course"]) == {"ppms", "rrms"}
        for course, part in arm["by_ms_course"].items():
            sub = rows[rows["ms_course"] == course]
            assert part["n"] == len(sub)
            assert part["endpoints"]["bcell_nadir_per_uL"]["mean"] == pytest.approx(sub["bcell_nadir_per_uL"].mean())
    assert "endpoints-by-course" in (out / "report.html").read_text()


def test_ms_covariates_within_eligibility():
    cfg = parse_config(config(disease="ms", **{"age = [30, 40]": 'age = [55, 60]\nedss = [3.0, 4.5]\n'
                                               'ms_course = "ppms"'}))
    from cartsim.model import build_model
    cov = cohort.draw(cfg, build_model(), 0, 0, 50).covariates
    assert cov.age.between(55, 60).all() and cov.age.nunique() > 40
    assert set(cov.edss) <= {s for s in EDSS_STEPS if 3.0 <= s <= 4.5} and (cov.ms_course == "ppms").all()
    again = cohort.draw(cfg, build_model(), 0, 17, 5).covariates     # the same patients, another chunk
    pd.testing.assert_frame_equal(again.reset_index(drop=True), cov.iloc[17:22].reset_index(drop=True))


# ---- running: determinism, resume, Dask, refusing foreign chunks -------------------------------

@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The reference run: one process, default chunk size."""
    out, _ = run(tmp_path_factory.mktemp("ref"), "ref")
    return out


def test_identical_for_any_chunk_size_and_workers(tmp_path, reference):
    ref = patients(reference)
    assert len(ref) == 40 and list(ref.groupby("arm").patient.max()) == [19, 19]
    assert ref.age.between(30, 40).all()
    for name, opts in {"c7": dict(chunk_size=7), "c64": dict(chunk_size=64),
                       "w2": dict(chunk_size=7, workers=2)}.items():
        out, _ = run(tmp_path, name, **opts)
        pd.testing.assert_frame_equal(patients(out), ref)
        assert (out / "summary.json").read_text() == (reference / "summary.json").read_text()


def test_resume_after_interruption_is_identical(tmp_path):
    out, first = run(tmp_path, "r", chunk_size=7)
    original = (out / "patients.parquet").read_bytes()
    summary = (out / "summary.json").read_text()
    for f in ("chunks/arm0_chunk1.parquet", "chunks/arm1_chunk2.parquet", "patients.parquet", "summary.json",
              "report.html", "failures.parquet"):
        (out / f).unlink()
    (out / "chunks/arm1_chunk0.parquet").write_bytes(b"half a file")     # killed while writing
    _, resumed = run(tmp_path, "r", resume=True)
    assert first.simulated == 40 and resumed.simulated == 7 + 6 + 7     # chunk size taken from the manifest
    assert (out / "patients.parquet").read_bytes() == original
    assert (out / "summary.json").read_text() == summary


def test_refuses_chunks_of_another_config(tmp_path):
    out, _ = run(tmp_path, "x", chunk_size=7)
    other = parse_config(config(**{"seed = 11": "seed = 12"}))
    for resume in (False, True):
        with pytest.raises(CartsimInputError, match="--out: .*different trial"):
            prepare(other, out, resume=resume)
    with pytest.raises(CartsimInputError, match="--chunk-size"):
        prepare(parse_config(config()), out, resume=True, chunk_size=8)


def test_dask_cluster_identical(tmp_path, reference):
    from dask.distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        out, _ = run(tmp_path, "dask", chunk_size=7, scheduler=cluster.scheduler_address)
    pd.testing.assert_frame_equal(patients(out), patients(reference))


def test_trajectories_and_report_from_cli(tmp_path):
    cfg = tmp_path / "t.toml"
    cfg.write_text(config(n=6))
    out = tmp_path / "cli"
    r = runner.invoke(app, ["trial", str(cfg), "--out", str(out), "--save-trajectories", "--times", "0,7,14,40",
                            "--chunk-size", "4"])
    assert r.exit_code == 0, r.output
    traj = pd.read_parquet(out / "trajectories.parquet")
    assert len(traj) == 2 * 6 * 4 and list(traj.columns[:3]) == ["arm", "patient", "day"]
    assert sorted(traj.day.unique()) == [0, 7, 14, 40]
    html = (out / "report.html").read_text()
    assert "not medical advice" in html and "investigational" in html
    trajectories = html[html.index('<section id="trajectories">'):html.index('<section id="events">')]
    # one image per trajectory panel: B cells, CAR-T cells, IgG and, lupus being known by it, anti-dsDNA
    assert trajectories.count("data:image/png;base64") == 4 and "anti-dsDNA antibody, share of" in trajectories
    r = runner.invoke(app, ["trial", str(cfg), "--out", str(out), "--times", "0,90"])   # times without saving
    assert r.exit_code == 2 and "--times" in r.output


# ---- summary and statistics --------------------------------------------------------------------

REQUIRED = {
    "continuous": {"mean", "sd", "median", "p05", "p25", "p75", "p95", "n"},
    "count": {"mean", "sd", "median", "p05", "p25", "p75", "p95", "n"},
    "time_to_event": {"mean", "sd", "median", "p05", "p25", "p75", "p95", "n", "n_events", "n_censored",
                      "km_median", "km_median_ci95"},
    "ordinal": {"fractions", "fraction_any", "fraction_grade2plus", "fraction_grade3plus"},
    "binary": {"value", "ci95"},
    "rate": {"value", "ci95"},
}


# endpoints that may not apply to an arm: without repeated doses, re-treatment or autoreactive depletion; and,
# in an untreated arm, the return of B cells that never fell and the course of CAR-T cells never given
NOT_APPLICABLE = {False: {"bcell_repletion_after_last_dose_week", "retreatment_day", "autoreactive_return_day"}}
NOT_APPLICABLE[True] = NOT_APPLICABLE[False] | {"bcell_reappearance_day", "bcell_repletion_day", "cart_persistence_day"}


def test_summary_structure_for_each_kind(reference):
    s = json.loads((reference / "summary.json").read_text())
    assert s["trial"] == "test" and s["seed"] == 11 and s["config"]["population"]["n"] == 20
    kinds = set()
    for arm in s["arms"]:
        assert arm["n"] == 20 and arm["n_failed"] == 0 and arm["seed"] == 11
        for name, e in arm["endpoints"].items():
            assert name in KINDS and e["kind"] == KINDS[name]
            if e.get("applicable", True) is False:   # e.g. a repeated-dose endpoint without repeated doses
                assert set(e) == {"kind", "applicable"} and name in NOT_APPLICABLE[arm["name"] == "no treatment"]
                continue
            assert set(e) - {"kind"} == REQUIRED[e["kind"]], name
            kinds.add(e["kind"])
    assert kinds == {"continuous", "count", "time_to_event", "ordinal", "binary"}
    untreated = s["arms"][1]["endpoints"]
    assert all(untreated[n] == {"kind": "time_to_event", "applicable": False}
               for n in ("bcell_reappearance_day", "cart_persistence_day"))
    crs = s["arms"][0]["endpoints"]["crs_max_grade"]
    assert list(crs["fractions"]) == ["0", "1", "2", "3", "4"] and sum(crs["fractions"].values()) == pytest.approx(1)
    assert [a["endpoints"]["infusions_count"]["mean"] for a in s["arms"]] == [1, 0]
    rate = endpoint(pd.DataFrame({"r": [0.0, 1.0, 2.0, 1.0]}), "r", "rate")
    assert set(rate) - {"kind"} == REQUIRED["rate"] and rate["value"] == 1.0
    rare = endpoint(pd.DataFrame({"r": [0.0] * 19 + [1.0]}), "r", "rate")   # t interval -0.055..0.155, cut at 0
    assert rare["value"] == 0.05 and rare["ci95"][0] == 0.0 and rare["ci95"][1] == pytest.approx(
        0.05 + 2.093024 * np.sqrt(0.05 * 0.95 * 20 / 19 / 20), rel=1e-6)


def test_kaplan_meier_hand_computed():
    # times 2, 3, 3+, 5, 6+, 8 (+ = censored; a patient censored at 3 is at risk at 3)
    km = kaplan_meier(np.array([2, 3, 3, 5, 6, 8]), np.array([1, 1, 0, 1, 0, 1], bool))
    assert km.time.tolist() == [2, 3, 5, 8]
    # S = 5/6, 5/6 * 4/5, 2/3 * 2/3, 0
    np.testing.assert_allclose(km.survival, [5 / 6, 2 / 3, 4 / 9, 0])
    # at day 5, Greenwood sum = 1/(6*5) + 1/(5*4) + 1/(3*2) = 1/4; log-log band S^exp(-+1.96 * 0.5/|ln S|)
    se = 0.5 / abs(np.log(4 / 9))
    assert km.lower[2] == pytest.approx((4 / 9) ** np.exp(Z95 * se)) == pytest.approx(0.0662, abs=1e-4)
    assert km.upper[2] == pytest.approx((4 / 9) ** np.exp(-Z95 * se)) == pytest.approx(0.7849, abs=1e-4)
    assert np.isnan(km.lower[3])                                  # undefined where S = 0
    assert km.median() == (5.0, [2.0, None])                      # upper band never reaches 1/2
    # no censoring, 40 patients with events on days 1..40: S_k = 1 - k/40 and the Greenwood sum
    # telescopes to k / (40 (40 - k)); median day 20, CI where the band's edges cross 1/2
    k = np.arange(1, 40)
    s = 1 - k / 40
    band = lambda sign: s ** np.exp(sign * Z95 * np.sqrt(k / (40 * (40 - k))) / np.abs(np.log(s)))  # noqa: E731
    km = kaplan_meier(np.arange(1, 41), np.ones(40, bool))
    np.testing.assert_allclose(km.lower[:-1], band(+1))
    np.testing.assert_allclose(km.upper[:-1], band(-1))
    assert km.median() == (20.0, [14.0, 26.0])
    assert band(+1)[12] > 0.5 >= band(+1)[13] and band(-1)[24] > 0.5 >= band(-1)[25]


def test_wilson_interval():
    p, (lo, hi) = wilson(3, 10)
    assert p == 0.3 and lo == pytest.approx(0.1078, abs=1e-4) and hi == pytest.approx(0.6032, abs=1e-4)
    assert wilson(0, 20)[1][0] == 0.0 and wilson(20, 20)[1][1] == 1.0


def test_mean_interval_from_sample_and_from_its_summary():
    """The report rebuilds an arm's interval from the summary's mean, sd and n: the same numbers as from the sample."""
    t15 = 2.131449545559323    # Student t, 15 degrees of freedom, 97.5th percentile
    assert mean_interval(10.0, 2.0, 16) == pytest.approx([10.0 - t15 * 0.5, 10.0 + t15 * 0.5], rel=1e-12)
    assert mean_interval(10.0, None, 1) is None and mean_interval(10.0, 2.0, 1) is None
    assert mean_interval(3.0, 0.0, 5) == [3.0, 3.0]
    v = np.random.default_rng(3).normal(5.0, 2.0, 50)
    m, ci = mean_ci(v)
    assert ci == mean_interval(m, float(v.std(ddof=1)), v.size)
    assert mean_ci(np.array([4.0]))[1] is None and mean_ci(np.array([np.nan])) == (None, None)


def test_mean_interval_is_students_t_not_normal():
    """Five patients: the t interval is 1.42 times as wide as the normal one (2.776 vs 1.960); the normal
    interval covers the true mean of normal samples of five only ~88% of the time, the t interval 95%."""
    lo, hi = mean_interval(0.0, 1.0, 5)
    assert (hi - lo) / 2 == pytest.approx(2.7764451 / np.sqrt(5), rel=1e-6)
    rng = np.random.default_rng(11)
    covered = [(lambda c: c[0] <= 0.0 <= c[1])(mean_ci(rng.normal(0.0, 1.0, 5))[1]) for _ in range(4000)]
    assert np.mean(covered) == pytest.approx(0.95, abs=0.012)


# ---- failed patients ---------------------------------------------------------------------------

def test_failed_patient_is_recorded_not_dropped(tmp_path, monkeypatch):
    draw = cohort.draw

    def broken(cfg, model, arm, first, n):
        pop = draw(cfg, model, arm, first, n)
        params = pop.params.copy()
        params[pop.covariates.patient.to_numpy() == 3, 0] = np.nan     # patient 3 cannot be solved
        return Population(pop.covariates, params, pop.parameter_names)

    monkeypatch.setattr(cohort, "draw", broken)
    out, _ = run(tmp_path, "fail", config(n=6))
    df = patients(out)
    assert len(df) == 12
    bad = df[df.patient == 3]
    assert (bad.status != "ok").all() and bad.bcell_nadir_per_uL.isna().all()
    failures = pd.read_parquet(out / "failures.parquet")
    assert failures[["arm", "patient"]].values.tolist() == [[0, 3], [1, 3]]
    assert failures.reason.str.len().gt(0).all()
    s = json.loads((out / "summary.json").read_text())
    assert [(a["n"], a["n_failed"]) for a in s["arms"]] == [(6, 1), (6, 1)]
    assert s["arms"][0]["endpoints"]["bcell_nadir_per_uL"]["n"] == 5
    assert "Failed simulations" in (out / "report.html").read_text()


def test_summary_json_is_checked_against_its_schema(tmp_path):
    """summary.json follows the typed contract (cartsim/trial/summary_schema.py): every endpoint entry matches
    its kind's model, and a field outside the contract is refused rather than written."""
    import pydantic

    from cartsim.trial.summary_schema import TrialSummary, checked

    cfg = tmp_path / "t.toml"
    cfg.write_text(config(n=4))
    out = tmp_path / "s"
    assert runner.invoke(app, ["trial", str(cfg), "--out", str(out), "--no-validation"]).exit_code == 0
    doc = json.loads((out / "summary.json").read_text())
    model = TrialSummary.model_validate(doc)
    kinds = {e.kind for arm in model.arms for e in arm.endpoints.values()}
    assert kinds >= {"continuous", "time_to_event", "ordinal", "binary"}
    bad = json.loads(json.dumps(doc))
    bad["arms"][0]["endpoints"]["crs_max_grade"]["fraction_any"] = "most"
    with pytest.raises(pydantic.ValidationError):
        checked(bad)
    extra = json.loads(json.dumps(doc))
    extra["arms"][0]["endpoints"]["igg_nadir_fraction"]["mode"] = 0.5
    with pytest.raises(pydantic.ValidationError):
        checked(extra)
    assert "TimeToEvent" in json.dumps(TrialSummary.model_json_schema())

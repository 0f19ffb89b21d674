"""Provenance of the parameter table: every assumed and calibrated value has an uncertainty range that holds it,
the loader refuses a bad range naming the parameter and the field, and `cartsim parameters --json` carries the
ranges."""

import json
import math

import numpy as np
import pytest
from scipy import stats
from typer.testing import CliRunner

from cartsim.cli import app
from cartsim.model.parameters import DISTRIBUTIONS, Uncertainty, _uncertainty, load_table, parse_table
from cartsim.trial.sensitivity import ranges


def test_every_assumed_and_calibrated_value_has_a_range_around_it():
    table = load_table()
    uncertain = [r for r in table if r.kind in ("assumed", "calibrated")]
    assert len(uncertain) == 86
    ranged = [r for r in uncertain if r.uncertainty is not None]
    assert len(ranged) == 73
    for r in ranged:
        u = r.uncertainty
        assert u.distribution in DISTRIBUTIONS and u.low < r.value < u.high and u.reason.strip(), r.name
        if r.bounds is not None:                       # fractions stay fractions in every draw
            assert u.bounded and r.bounds[0] <= u.low and u.high <= r.bounds[1], r.name
    # the rest are placeholders, switches and numerical guards, each saying so; none is calibrated
    bare = {r.name for r in uncertain if r.uncertainty is None}
    assert all(table[n].no_uncertainty.strip() and table[n].kind == "assumed" for n in bare)
    assert {"auto_share", "car_presence_eps", "costim_expansion", "ms_relapse_rate"} <= bare
    assert not [r.name for r in table if r.kind in ("literature", "derived") and r.uncertainty is not None]


def test_calibrated_ranges_are_the_calibration_grids():
    table = load_table()
    k = table["car_k_stim"].uncertainty             # bench/calibrate.py's car_k_stim grid reaches 2000
    assert (k.distribution, k.high) == ("loguniform", 2000.0)
    igg = table["pc_death"].uncertainty              # bench/calibrate_igg.py: half-lives 20-80 years
    assert math.log(2) / igg.high / 365.25 == pytest.approx(20, rel=1e-3)
    assert math.log(2) / igg.low / 365.25 == pytest.approx(80, rel=1e-3)
    assert table["mab_ec50"].uncertainty.low == 0.0005 and table["mab_ec50"].uncertainty.high == 0.0057


def test_fractions_are_bounded_and_thresholds_keep_their_order():
    table = load_table()
    for name in ("igg_pc_share", "pc_cd19_share", "ms_gd_imax", "crs_toci_resistant", "ms_raw_probability"):
        assert table[name].bounds == (0.0, 1.0), name
    for prefix in ("crs_il6_grade", "icans_grade"):
        ranges_ = [table[f"{prefix}{g}"].uncertainty for g in (1, 2, 3, 4)]
        assert all(a.bounded and a.high < b.low for a, b in zip(ranges_, ranges_[1:])), prefix


@pytest.mark.parametrize("distribution, reference", [
    ("uniform", stats.uniform(loc=2.0, scale=6.0)),
    ("loguniform", stats.loguniform(2.0, 8.0)),
    ("normal", stats.norm(loc=5.0, scale=3.0 / 1.959963984540054)),
    ("lognormal", stats.lognorm(s=math.log(4.0) / (2 * 1.959963984540054), scale=4.0)),
])
def test_quantiles_map_to_values_by_the_distribution(distribution, reference):
    u = Uncertainty(distribution, 2.0, 8.0, "test")
    q = np.array([0.025, 0.3, 0.5, 0.975])
    assert u.ppf(q) == pytest.approx(reference.ppf(q))
    if not u.bounded:                                 # low/high are the 2.5th and 97.5th percentiles
        assert u.ppf([0.025, 0.975]) == pytest.approx([2.0, 8.0])
    else:                                             # ... or the bounds
        assert u.ppf([0.0, 1.0]) == pytest.approx([2.0, 8.0])


def test_sampling_uses_the_tables_range_not_the_default():
    r = ranges(load_table(), ("reset_halflife", "pb_death", "auto_floor"))
    assert not r["reset_halflife"].default and r["reset_halflife"].distribution == "loguniform"
    assert (r["reset_halflife"].low, r["reset_halflife"].high) == (182.6, 7305.0)
    assert not r["pb_death"].default and (r["pb_death"].low, r["pb_death"].high) == (0.1, 0.4)
    assert r["auto_floor"].default          # a numerical guard: no table range, the stated default


def _entry(**fields):
    return {"value": 1.5, "unit": "1/day", "component": "test", "kind": "assumed", "source": "a test value (assumed)",
            "description": "test"} | fields


@pytest.mark.parametrize("fields, message", [
    ({"uncertainty": {"distribution": "beta", "low": 1.0, "high": 2.0, "reason": "x"}},
     "uncertainty.distribution must be one of"),
    ({"uncertainty": {"distribution": "lognormal", "low": 3.0, "high": 2.0, "reason": "x"}}, "must be below"),
    ({"uncertainty": {"distribution": "loguniform", "low": 0.0, "high": 2.0, "reason": "x"}}, "must be > 0"),
    ({"uncertainty": {"distribution": "uniform", "low": 2.0, "high": 3.0, "reason": "x"}},
     "outside its uncertainty range"),
    ({"uncertainty": {"distribution": "uniform", "low": 1.5, "high": 3.0, "reason": "x"}},
     "outside its uncertainty range"),
    ({"uncertainty": {"distribution": "uniform", "low": 1.0, "high": 3.0, "reason": " "}}, "reason is empty"),
    ({"value": 0.5, "unit": "1", "bounds": [0, 1],
      "uncertainty": {"distribution": "uniform", "low": 0.2, "high": 1.2, "reason": "x"}}, "leaves the parameter's bounds"),
    ({"value": 0.5, "unit": "1", "bounds": [0, 1],
      "uncertainty": {"distribution": "lognormal", "low": 0.25, "high": 0.9, "reason": "x"}}, "must be uniform or loguniform"),
    ({"value": 1.5, "bounds": [0, 1]}, "outside its bounds"),
    ({}, "needs uncertainty = "),
    ({"kind": "calibrated", "no_uncertainty": "why"}, "needs an uncertainty range"),
    ({"no_uncertainty": "why", "uncertainty": {"distribution": "uniform", "low": 1.0, "high": 2.0, "reason": "x"}},
     "both uncertainty and no_uncertainty"),
    ({"uncertainty": {"distribution": "uniform", "low": 1, "high": 2, "reason": "x", "mode": 1}},
     "uncertainty has unknown keys"),
    ({"uncertainty": {"distribution": "uniform", "low": "one", "high": 2}}, "uncertainty needs"),
    ({"uncertainty_range": [1, 2]}, "unknown field"),
])
def test_a_bad_range_is_refused_with_the_parameter_named(fields, message):
    with pytest.raises(ValueError, match=f"parameter 'k_test'.*{message}"):
        parse_table({"k_ok": _entry(no_uncertainty="a placeholder"), "k_test": _entry(**fields)})


def test_a_good_small_table_loads():
    t = parse_table({"k_test": _entry(uncertainty={"distribution": "lognormal", "low": 0.75, "high": 3.0,
                                                   "reason": "2-fold"})})
    assert t["k_test"].uncertainty == Uncertainty("lognormal", 0.75, 3.0, "2-fold")
    assert t["k_test"].uncertainty.ppf(0.5) == pytest.approx(1.5)
    assert _uncertainty("k_test", None) is None


def test_parameters_json_carries_the_ranges():
    r = CliRunner().invoke(app, ["parameters", "--json"])
    assert r.exit_code == 0
    by_name = {row["name"]: row for row in json.loads(r.output)}
    assert by_name["car_k_stim"]["uncertainty"] == {
        "distribution": "loguniform", "low": 350.0, "high": 2000.0,
        "reason": load_table()["car_k_stim"].uncertainty.reason}
    assert by_name["k_el_flu"]["uncertainty"] is None
    assert by_name["igg_pc_share"]["bounds"] == [0.0, 1.0]
    assert by_name["auto_floor"]["no_uncertainty"].startswith("a numerical guard")
    assert len([row for row in by_name if "[" not in row]) == len(load_table())

"""Serum IgG from two plasma-cell pools: CD19+ plasma cells (renewed from plasmablasts, killed by CD19 CAR-T)
and CD19- long-lived plasma cells (spared by CD19 CAR-T and by anti-CD20 antibodies)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cartsim.model import build_model
from cartsim.population import typical
from cartsim.scenario import Scenario
from cartsim.validate import CALIBRATED, YEAR, cd19_cart_igg, ocrelizumab_igg

from bench_scripts import BENCH, bench_module

POOLS = ("igg", "pc", "pc_cd19", "pb", "plasma_cells")


@pytest.fixture(scope="module")
def model():
    return build_model()


def _course(model, therapy: str, disease: str, days: float, parameters: dict | None = None):
    sc = Scenario.make(therapy, disease, days, parameters=parameters)
    times = np.arange(0.0, days + 1e-9, 1.0)
    sol = sc.run(typical(model, sc.disease, sc.course), columns=POOLS, times=times)
    return times, {c: sol.column(c)[0] for c in POOLS}


def test_untreated_pools_stay_at_their_steady_state(model):
    _, x = _course(model, "untreated", "healthy", 3 * YEAR)
    for name in POOLS:
        assert np.allclose(x[name], x[name][0], rtol=1e-9), name


def test_pool_sizes_and_igg_shares_follow_the_table(model):
    """pc_count0 plasma cells, of which the CD19+ ones make pc_cd19_share of the plasma-cell IgG."""
    table = model.table
    _, x = _course(model, "untreated", "healthy", 1.0)
    pc, pc19 = x["pc"][0], x["pc_cd19"][0]
    assert pc + pc19 == pytest.approx(table.value("pc_count0"), rel=1e-9)
    assert pc19 / (pc + pc19) == pytest.approx(table.value("pc_cd19_share"), rel=1e-9)


def test_cd19_cart_kills_cd19_positive_plasma_cells_only(model):
    t, x = _course(model, "mb-cart19", "sle", 60.0)
    day30 = np.searchsorted(t, 30.0)
    assert x["pc_cd19"][day30] / x["pc_cd19"][0] < 0.05
    assert x["pc"][day30] / x["pc"][0] > 0.99        # CD19-: not a target, not killed by lymphodepletion


def test_bcma_cart_kills_both_pools(model):
    t, x = _course(model, "eque-cel", "ms", 60.0)
    day30 = np.searchsorted(t, 30.0)
    assert x["pc_cd19"][day30] / x["pc_cd19"][0] < 0.2
    assert x["pc"][day30] / x["pc"][0] < 0.2


def test_zero_cd19_share_leaves_igg_untouched_by_cd19_cart_beyond_plasmablasts(model):
    """With no CD19+ plasma cells, CD19 CAR-T can only remove the plasmablasts' share of IgG."""
    table = model.table
    t, x = _course(model, "mb-cart19", "sle", 120.0, {"pc_cd19_share": 0.0})
    low = x["igg"].min() / x["igg"][0]
    assert low > table.value("igg_pc_share") - 0.01


def test_igg_under_ocrelizumab_falls_slowly():
    """Regression: total IgG fell to 68% of baseline within a year of ocrelizumab (published: about 3% a year)."""
    got = ocrelizumab_igg()
    assert 0.94 <= got["typical_year_1"] <= 1.0
    assert got["typical_year_5"] < got["typical_year_1"]


def test_cd19_cart_lowers_igg_more_than_ocrelizumab_but_spares_long_lived_plasma_cells():
    cart, ocr = cd19_cart_igg(), ocrelizumab_igg()
    assert cart["typical_total_igg_month_9"] < ocr["typical_year_1"]
    assert cart["typical_cd19neg_plasma_cells_month_12"] > 0.93


def test_igg_calibration_record_matches_the_table_and_its_targets_are_labelled(model):
    record = json.loads((BENCH / "calibration_igg.json").read_text())
    table = model.table
    assert record["best"] == {k: table.value(k) for k in record["grid"]}
    assert record["rows"][0]["loss"] == min(r["loss"] for r in record["rows"])
    for name in record["grid"]:
        assert table[name].kind == "calibrated" and "bench/calibrate_igg.py" in table[name].source
    calibrate_igg = bench_module("calibrate_igg")
    assert {tuple(k) for k in record["targets"]} == set(calibrate_igg.TARGETS)
    assert set(calibrate_igg.TARGETS) <= CALIBRATED


def test_igg_fall_after_cd19_cart_differs_between_patients(model):
    """Regression: every patient's IgG nadir after CD19 CAR-T was the same fraction (0.821, 0.821-0.821)."""
    from cartsim import endpoints
    from cartsim.population import sample
    sc = Scenario.make("kyv-101", "ms", 200.0)
    pop = sample(model, sc.disease, 40, 11, course=sc.course)
    ep = endpoints.compute(sc.run(pop, columns=endpoints.COLUMNS), model.table, None, pop)
    low = ep.igg_nadir_fraction.to_numpy(float)
    assert np.percentile(low, 95) - np.percentile(low, 5) > 0.05


def _derived(model, *names: str) -> list[float]:
    import sympy as sp

    from cartsim.model.ir import substitute_derived
    values = {sp.Symbol(n): model.table.value(n) for n in model.parameters}
    return [float(substitute_derived(model, sp.Symbol(n)).xreplace(values)) for n in names]


def test_free_niches_take_the_settle_share_of_plasmablasts(model):
    """With every long-lived niche free, a plasmablast settles there at the rate that makes pc_settle_share_empty
    of plasmablasts settle rather than die: gain * (1 - CD19+ entry share) * entry rate = d_pb s / (1 - s)."""
    table = model.table
    gain, k, f19 = _derived(model, "pc_niche_vacancy_gain", "pc_k_niche", "pc_cd19_entry_share")
    d_pb, s = table.value("pb_death"), table.value("pc_settle_share_empty")
    empty = gain * (1 - f19) * k
    assert empty / (empty + d_pb) == pytest.approx(s, rel=1e-12)
    assert gain > 100      # at steady state the niches are full: almost every plasmablast dies


def test_plasmablast_supply_from_naive_cells_keeps_the_steady_state(model):
    """Untreated pools do not move whatever the naive-to-plasmablast rate (the entry and death rates are derived)."""
    for rate in (0.0, 0.0026):
        _, x = _course(model, "untreated", "healthy", YEAR, {"b_k_naive_to_pb": rate})
        for name in POOLS:
            assert np.allclose(x[name], x[name][0], rtol=1e-9), (rate, name)


def test_igg_comes_back_after_bcma_cart_through_free_niches_and_naive_b_cells(model):
    """Regression: a year after an anti-BCMA CAR-T IgG was 0.03 g/L (plasma cells refilled at their steady-state
    rate, from plasmablasts of memory B cells only). IgG now recovers, faster the more plasmablasts naive B cells
    make, and not at all within a year if free niches took plasmablasts no faster than full ones."""
    def igg_at(days: float, **values: float) -> float:
        t, x = _course(model, "eque-cel", "healthy", days, values or None)
        return float(x["igg"][-1])

    assert igg_at(365.0) > 5.0
    assert igg_at(365.0, b_k_naive_to_pb=0.001) < igg_at(365.0) < igg_at(365.0, b_k_naive_to_pb=0.0026)
    assert igg_at(365.0, pc_settle_share_empty=1e-6) < 1.0


def test_plasma_calibration_record_matches_the_table(model):
    record = json.loads((BENCH / "calibration_plasma.json").read_text())
    table = model.table
    assert record["fitted"] == {k: table.value(k) for k in record["fitted"]}
    calibrate_plasma = bench_module("calibrate_plasma")
    assert {tuple(k) for k in record["targets"]} == calibrate_plasma.FITTED_CHECKS <= CALIBRATED
    assert abs(record["predicted"][calibrate_plasma.KEY[1]] - calibrate_plasma.TARGET) < 0.05
    for name in record["fitted"]:
        assert table[name].kind == "calibrated" and "bench/calibrate_plasma.py" in table[name].source

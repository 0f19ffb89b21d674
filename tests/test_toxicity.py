"""CRS and ICANS: IL-6 follows the target burden through the myeloid amplification, and tocilizumab
blocks only the IL-6 share of the CRS signal."""

import numpy as np
import pandas as pd
import pytest

from cartsim import endpoints
from cartsim.engine import Solution, solve
from cartsim.model import build_model
from cartsim.population import Population, typical
from cartsim.scenario import Scenario

COLS = ("il6", "il6_myeloid", "kill_flux", "il6_signal", "icans_signal", "toci_central")


@pytest.fixture(scope="module")
def model():
    return build_model()


def _patients(model, disease, values: dict[str, list[float]]) -> Population:
    """The typical patient of ``disease``, one row per value of the varied parameters."""
    base = typical(model, disease)
    n = len(next(iter(values.values())))
    pop = Population(pd.concat([base.covariates] * n, ignore_index=True), np.repeat(base.params, n, axis=0),
                     base.parameter_names)
    return pop.with_parameters({k: np.asarray(v, float) for k, v in values.items()})


def test_il6_peak_rises_with_tumour_burden(model):
    sc = Scenario.make("axi-cel", "lbcl", 30)
    burdens = [0.0, 1000.0, 5000.0, 20000.0, 80000.0, 300000.0]
    sol = sc.run(_patients(model, sc.disease, {"tumour_burden": burdens}), columns=COLS)
    assert sol.status.tolist() == [0] * len(burdens)
    post = sol.times >= 0
    il6 = sol.column("il6")[:, post].max(axis=1)
    myeloid = sol.column("il6_myeloid")[:, post].max(axis=1)
    # the myeloid route makes IL-6 rise with the burden; below it, a moderate burden exhausts a CD28 product and
    # can cost a few percent of the IL-6 its activated cells release
    assert np.all(np.diff(il6[2:]) > 0) and np.all(il6[1:] > 0.9 * il6[:-1]), il6
    assert np.all(np.diff(myeloid) > 0), myeloid
    assert il6[-1] > 30 * il6[0]      # B cells alone: activated CAR-T cells only; a bulky tumour: far more
    # the myeloid share grows with the burden: negligible with B cells only, and it carries the IL-6 peak (a ratio
    # of peaks: about 1) once the tumour is bulky
    share = myeloid / model.table.value("il6_k_el") / il6
    assert np.all(np.diff(share[:4]) > 0), share
    assert share[0] < 0.05 and np.all(share[3:] > 0.9) and share[-1] > 20 * share[0]


def test_myeloid_release_is_saturable(model):
    k50, vmax = model.table.value("il6_myeloid_k50"), model.table.value("il6_myeloid_max")
    sc = Scenario.make("axi-cel", "lbcl", 20)
    sol = sc.run(_patients(model, sc.disease, {"tumour_burden": [1e6]}), columns=COLS)
    flux, release = sol.column("kill_flux")[0], sol.column("il6_myeloid")[0]
    assert release.max() < vmax
    i = int(np.argmax(flux))
    assert release[i] == pytest.approx(vmax * flux[i] ** 2 / (flux[i] ** 2 + k50 ** 2), rel=1e-9)


def test_no_target_no_myeloid_il6(model):
    """A CD19 product where no CD19+ cell is left to kill: the myeloid term is exactly zero."""
    sc = Scenario.make("axi-cel", "lbcl", 20)
    pop, doses = sc.patient_inputs(model, typical(model, sc.disease))
    times = sc.output_times()
    with_target = solve(model, pop.params, times, COLS, doses, sc.triggers(model), t0=sc.start)
    no_target = solve(model, pop.with_parameters({"target_cd19": 0.0}).params, times, COLS, doses, sc.triggers(model),
                      t0=sc.start)
    assert with_target.column("il6_myeloid").max() > 1.0
    assert np.all(no_target.column("kill_flux") == 0.0)
    assert np.all(no_target.column("il6_myeloid") == 0.0)
    np.testing.assert_allclose(no_target.column("il6"), model.table.value("il6_0"), rtol=1e-9)


def test_tocilizumab_leaves_the_resistant_share_of_the_crs_signal(model):
    sc = Scenario.make("axi-cel", "lbcl", 20)
    sol = sc.run(typical(model, sc.disease), columns=COLS)
    tf = float(sol.trigger_times[0, 0, 0])
    assert np.isfinite(tf)
    after = sol.times > tf
    share = sol.column("il6_signal")[0, after] / sol.column("il6")[0, after]
    f = model.table.value("crs_toci_resistant")
    assert share.min() >= f and share[0] < f + 0.01
    # ICANS follows the CNS exposure to IL-6, which tocilizumab does not reach: it keeps rising after the rescue
    cns = sol.column("icans_signal")[0]
    assert cns[after].max() > 1.5 * cns[np.searchsorted(sol.times, tf)]


def test_crs_grade_counts_a_rescue_missed_by_the_output_grid(model):
    """Tocilizumab fires the moment the signal reaches grade 2; the sampled peak may be lower."""
    times = np.array([0.0, 1.0, 2.0])
    cols = endpoints.COLUMNS
    values = np.ones((2, times.size, len(cols)))
    values[:, :, cols.index("il6_signal")] = 150.0                 # sampled peak: grade 1
    fires = np.array([[[1.5]], [[np.nan]]])                         # patient 0 got tocilizumab
    sol = Solution(times, cols, values, fires, np.zeros(2, int), np.zeros(2, int))
    ep = endpoints.compute(sol, model.table)
    assert ep.crs_max_grade.tolist() == [2, 1]
    assert ep.tocilizumab_given.tolist() == [True, False]

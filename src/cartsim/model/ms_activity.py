"""Multiple sclerosis disease activity: relapse and lesion intensities, progression hazard, interferon beta.

The ODE part of the MS model gives, per patient, the *intensities* of the
clinical events; the events themselves (relapses, lesion counts on scheduled
MRIs, confirmed disability progression) are drawn from them with each
patient's own random stream (``cartsim.ms_outcomes``), as a count or
time-to-event observation model on top of the mechanistic model.

* **Peripheral autoreactive activity** ``ms_b_activity``: the autoreactive
  memory B cells relative to baseline, followed with a lag (B cells act through
  antigen presentation to T cells, which takes weeks to change lesion formation).
* **Relapses** occur at ``ms_relapse_rate * (1 - Imax_r + Imax_r * activity) *
  (1 - interferon effect)``: a share ``Imax_r`` of relapse activity depends on
  autoreactive B cells (anti-CD20 and CD19 CAR-T remove it), the rest does not.
  The cumulative expected count is the state ``relapse_cum``.
* **Gadolinium-enhancing lesions**: new lesions appear at a rate of the same form
  and enhance for a mean ``1 / gd_k_resolve`` days (Velez de Mendizabal 2013);
  the state ``gd_active`` is the expected number enhancing, read at each scan.
* **Progression independent of relapses** (PIRA) has a hazard driven by
  compartmentalised CNS inflammation, the mean of CNS B cells and intrathecal
  IgG relative to baseline (``cartsim.model.cns``), which anti-CD20 antibodies
  barely reach; ``pira_cum`` is the cumulative hazard. Relapse-associated
  worsening is drawn per relapse (``ms_raw_probability``).
* **Interferon beta-1a** (SC, three times weekly): a pharmacodynamic effect
  compartment ``ifn_level`` (induced antiviral proteins outlast the drug) with
  an Emax effect that lowers relapse and lesion rates by the published relative
  reductions.

Outside MS the rates are zero (their table values); the ``ms`` disease and its
courses (``rrms``, ``spms``, ``ppms``) set them.
"""

from __future__ import annotations

import sympy as sp

from cartsim.model.ir import ModelBuilder

YEAR = 365.25     # days per year: the MS rates are given per year, the model runs per day


def add(b: ModelBuilder) -> None:
    b.component("ms_activity")
    p = b.p
    days_per_year = b.constant("days_per_year", YEAR, "day/year", "days per year (rates per year to per day)")
    k_lag = p("ms_activity_k")
    auto = sp.Symbol("b_auto") / (sp.Symbol("b_auto0") + p("auto_floor"))
    act = b.state("ms_b_activity", "1", "autoreactive B-cell activity driving MS inflammation (relative, lagged)",
                  sp.Symbol("b_auto0") / (sp.Symbol("b_auto0") + p("auto_floor")))
    b.flow(None, "ms_b_activity", k_lag * auto, "follows autoreactive memory B cells")
    b.flow("ms_b_activity", None, k_lag * act, "follows autoreactive memory B cells")

    ifn = b.state("ifn_level", "mg", "interferon beta-1a effect compartment (dose equivalents)", 0)
    b.flow("ifn_level", None, p("ifn_k") * ifn, "decay of the induced response")
    e_ifn = b.observe("ifn_effect", ifn / (ifn + p("ifn_ec50")), "1", "interferon beta effect (0-1)")

    def intensity(rate: sp.Expr, imax: sp.Expr, ifn_max: sp.Expr) -> sp.Expr:
        return rate * (1 - imax + imax * act) * (1 - ifn_max * e_ifn)

    relapse = b.observe("relapse_rate", intensity(p("ms_relapse_rate") / days_per_year, p("ms_relapse_imax"),
                                                  p("ifn_relapse_effect")), "1/day", "relapse intensity")
    b.state("relapse_cum", "1", "expected relapses since the start of the simulation", 0, cumulative=True)
    b.flow(None, "relapse_cum", relapse, "relapses")

    new_gd = b.observe("gd_new_rate", intensity(p("ms_gd_rate"), p("ms_gd_imax"), p("ifn_gd_effect")),
                       "1/day", "rate of new gadolinium-enhancing lesions")
    k_gd = p("gd_k_resolve")
    gd0 = p("ms_gd_rate") * (1 - p("ms_gd_imax") + p("ms_gd_imax") * sp.Symbol("b_auto0")
                             / (sp.Symbol("b_auto0") + p("auto_floor"))) / k_gd
    gd = b.state("gd_active", "lesions", "expected gadolinium-enhancing lesions", gd0)
    b.flow(None, "gd_active", new_gd, "new enhancing lesions")
    b.flow("gd_active", None, k_gd * gd, "end of enhancement")

    cns = b.observe("cns_inflammation", (sp.Symbol("cns_b") + sp.Symbol("intrathecal_igg")) / 2, "1",
                    "compartmentalised CNS inflammation (CNS B cells and intrathecal IgG, relative)")
    pira = b.observe("pira_rate", p("ms_pira_rate") / days_per_year * (1 - p("ms_pira_imax") + p("ms_pira_imax") * cns),
                     "1/day", "hazard of progression independent of relapses")
    b.state("pira_cum", "1", "cumulative hazard of progression independent of relapses", 0, cumulative=True)
    b.flow(None, "pira_cum", pira, "progression hazard")

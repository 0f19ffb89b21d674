"""Cytokine release and toxicity: IL-6, a lagged CNS cytokine signal, tocilizumab.

IL-6 is produced in proportion to target engagement (cells killed per day and
antigen-stimulated effectors), so it tracks target burden rather than dose
(Hardiansyah 2019). Tocilizumab (two-compartment PK with saturable
elimination, Frey 2010) blocks the IL-6 receptor: CRS grade is read from the
unblocked IL-6 signal. ICANS follows a lagged CNS exposure to IL-6, which
tocilizumab does not reach. Grades map signal thresholds onto the ASTCT 0-4
scale (see ``cartsim.endpoints``).
"""

from __future__ import annotations

import sympy as sp

from cartsim.model.ir import ModelBuilder


def add(b: ModelBuilder) -> None:
    b.component("toxicity")
    p = b.p
    k6 = p("il6_k_el")
    il6 = b.state("il6", "pg/mL", "serum IL-6", p("il6_0"))
    flux = b.observe("kill_flux", sp.Symbol("kill_flux_b") + sp.Symbol("kill_flux_tumour"),
                     "cells/uL-eq/day", "target cells killed by CAR-T per day")
    engaged = sp.Symbol("car_stimulation") * sp.Symbol("car_eff")
    b.flow(None, "il6", k6 * p("il6_0") + p("il6_per_kill") * flux + p("il6_per_engaged_car") * engaged,
           "basal and CAR-T activation-driven production")
    b.flow("il6", None, k6 * il6, "elimination")

    cns = b.state("il6_cns", "pg/mL", "IL-6 exposure of the CNS (lagged)", p("il6_0"))
    b.flow(None, "il6_cns", p("cns_k_equil") * il6, "entry into CNS")
    b.flow("il6_cns", None, p("cns_k_equil") * cns, "clearance from CNS")

    v1, v2 = p("toci_v1"), p("toci_v2")
    ac = b.state("toci_central", "mg", "tocilizumab in serum", 0)
    ap = b.state("toci_peripheral", "mg", "tocilizumab in tissue", 0)
    conc = b.observe("toci_conc", ac / v1, "ug/mL", "serum tocilizumab")
    b.flow("toci_central", None, p("toci_cl") * conc + p("toci_vmax") * conc / (p("toci_km") + conc),
           "linear and saturable elimination")
    b.flow("toci_central", "toci_peripheral", p("toci_q") * conc, "distribution")
    b.flow("toci_peripheral", "toci_central", p("toci_q") * ap / v2, "redistribution")
    b.derive("toci_dose_mg", sp.Min(p("toci_mg_per_kg") * p("weight_kg"), p("toci_max_mg")))
    occupancy = conc / (conc + p("toci_ec50"))
    signal = b.observe("il6_signal", il6 * (1 - occupancy), "pg/mL", "IL-6 signalling not blocked by tocilizumab")
    b.observe("icans_signal", cns, "pg/mL", "CNS cytokine exposure driving ICANS")
    b.observe("crs_grade", _grade(b, signal, "crs_il6_grade"), "grade", "ASTCT CRS grade (0-4)")
    b.observe("icans_grade", _grade(b, cns, "icans_grade"), "grade", "ASTCT ICANS grade (0-4)")


def _grade(b: ModelBuilder, signal: sp.Expr, prefix: str) -> sp.Expr:
    return sum((sp.Piecewise((1, signal >= b.p(f"{prefix}{g}")), (0, True)) for g in range(1, 5)), sp.Integer(0))

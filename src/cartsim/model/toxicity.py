"""Cytokine release and toxicity: IL-6, a lagged CNS cytokine signal, tocilizumab.

IL-6 has three sources, all driven by the CAR meeting its target, so it tracks
target burden and expansion rather than dose (Hardiansyah 2019): release per
target cell killed (small: the joint fit hardly tells it from 0 beside the
myeloid amplification), release by activated (dividing) CAR-T
effectors for as long as their proliferation programme runs, which is why CRS
follows expansion (Awasthi 2020), and the myeloid amplification.
CAR-T cells kill their targets by pyroptosis, and what the dying cells release
activates macrophages and monocytes to secrete IL-6 and IL-1 (Liu Y et al. Sci
Immunol 2020; Giavridis 2018; Norelli 2018). Inflammasome activation needs two
signals, both from the dying cells, so myeloid release rises with the square
of the kill rate before it saturates: negligible when CAR-T cells clear the
few B cells left after lymphodepletion in autoimmune disease, dominant when
they attack a large tumour.

Tocilizumab (two-compartment PK with saturable elimination, Frey 2010) blocks
the IL-6 receptor. CRS is read from a cytokine signal in IL-6 equivalents of
which a share, carried by cytokines tocilizumab does not block (IL-1, GM-CSF,
IFN-gamma), stays after the rescue dose. ICANS follows a lagged CNS exposure to
IL-6, which tocilizumab does not reach. Grades map signal thresholds onto the
ASTCT 0-4 scale (see ``cartsim.endpoints``). The same rule holds for every
product and setting; its sizes are fitted jointly to the CRS and ICANS of six
trials and series (lymphoma, three in autoimmune disease, NMOSD, myasthenia gravis) by
``bench/calibrate_crs.py``.
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
    activated = sp.Symbol("car_act") * sp.Symbol("car_eff")
    h = p("il6_myeloid_hill")
    myeloid = b.observe("il6_myeloid", p("il6_myeloid_max") * flux**h / (flux**h + p("il6_myeloid_k50")**h),
                        "pg/mL/day", "IL-6 release by macrophages and monocytes activated by dying target cells "
                        "(zero without target killing)")
    b.flow(None, "il6", k6 * p("il6_0") + p("il6_per_kill") * flux + p("il6_per_activated_car") * activated,
           "basal and CAR-T activation-driven production")
    b.flow(None, "il6", myeloid, "myeloid amplification (saturable in the target kill rate)")
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
    blocked = occupancy * (1 - p("crs_toci_resistant"))
    signal = b.observe("il6_signal", il6 * (1 - blocked), "pg/mL",
                       "cytokine signal driving CRS, in IL-6 equivalents, not blocked by tocilizumab")
    b.observe("icans_signal", cns, "pg/mL", "CNS cytokine exposure driving ICANS")
    b.observe("crs_grade", _grade(b, signal, "crs_il6_grade"), "grade", "ASTCT CRS grade (0-4)")
    b.observe("icans_grade", _grade(b, cns, "icans_grade"), "grade", "ASTCT ICANS grade (0-4)")
    b.event("tocilizumab_rescue", "il6_signal", "crs_il6_grade2", "toci_central", "toci_dose_mg",
            "tocilizumab (8 mg/kg IV, at most 800 mg) when CRS reaches grade 2")


def _grade(b: ModelBuilder, signal: sp.Expr, prefix: str) -> sp.Expr:
    return sum((sp.Piecewise((1, signal >= b.p(f"{prefix}{g}")), (0, True)) for g in range(1, 5)), sp.Integer(0))

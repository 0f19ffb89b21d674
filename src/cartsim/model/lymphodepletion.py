"""Lymphodepleting chemotherapy (fludarabine, cyclophosphamide) and endogenous T cells.

Each drug is an exposure state (mg/m2 still in the body, first-order
elimination); the kill rate of lymphocytes is linear in exposure. Losing
lymphocytes frees homeostatic cytokines (IL-7, IL-15): the *homeostatic boost*
is a per-cell proliferation rate that rises as lymphocytes (T + CAR-T) fall,
the mechanism by which lymphodepletion helps CAR-T expansion (Kimmel 2021).
"""

from __future__ import annotations

import sympy as sp

from cartsim.model.ir import ModelBuilder


def add(b: ModelBuilder) -> None:
    b.component("lymphodepletion")
    flu = b.state("flu", "mg/m2", "fludarabine exposure", 0)
    cy = b.state("cy", "mg/m2", "cyclophosphamide exposure", 0)
    b.flow("flu", None, b.p("k_el_flu") * flu, "fludarabine elimination")
    b.flow("cy", None, b.p("k_el_cy") * cy, "cyclophosphamide elimination")
    ld_kill = b.observe("ld_kill", b.p("kappa_flu") * flu + b.p("kappa_cy") * cy, "1/day",
                        "kill rate of lymphocytes by lymphodepleting chemotherapy")

    b.component("t_cells")
    t0 = b.derive("t_total0", b.p("t_blood0") / b.p("f_blood_lymph"))
    t = b.state("t_endo", "cells/uL-eq", "endogenous T cells (all compartments)", t0)
    k50 = b.p("hp_k50_frac") * t0
    load = t + sp.Symbol("car_total")
    boost = b.observe("homeostatic_boost", b.p("hp_max") * k50**2 / (k50**2 + load**2), "1/day",
                      "lymphopenia-driven proliferation rate of T and CAR-T cells")
    boost0 = b.p("hp_max") * k50**2 / (k50**2 + t0**2)
    s_t = b.derive("s_t", (b.p("d_t") - boost0) * t0)
    b.flow(None, "t_endo", s_t, "T-cell supply (thymus and periphery)")
    b.flow(None, "t_endo", boost * t, "homeostatic proliferation")
    b.flow("t_endo", None, b.p("d_t") * t, "T-cell death")
    b.flow("t_endo", None, ld_kill * t, "killed by lymphodepletion")
    b.observe("t_blood_per_uL", b.p("f_blood_lymph") * t, "cells/uL", "endogenous T cells in blood")

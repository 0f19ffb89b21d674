"""FcRn recycling of IgG, and a drug that blocks it (efgartigimod).

The neonatal Fc receptor (FcRn) rescues IgG taken up by endothelial and
blood cells from lysosomal breakdown and returns it to the blood; this is why
IgG lives about three weeks while other serum proteins of its size live days.
Without FcRn, IgG is broken down ``fcrn_igg_catabolism_fold`` times faster
(FcRn-deficient people: five-fold). With a share ``occupancy`` of FcRn taken
by a blocker, the rescued share of IgG falls in proportion, so every IgG pool
(total IgG and the autoantibody, ``model/antibodies.py``) is broken down at

    k_IgG * (1 + (fcrn_igg_catabolism_fold - 1) * occupancy)

with k_IgG = ln 2 / igg_halflife. At occupancy 1 IgG's half-life is
``igg_halflife / fcrn_igg_catabolism_fold`` and its level falls towards the
same fraction of baseline (production is unchanged). Antibody made inside the
CNS (``model/cns.py``) is not in the blood and is left out.

The blocker (efgartigimod, an IgG1 Fc fragment) is given IV by body weight.
Its serum level is a one-compartment model; FcRn occupancy is an Emax function
of it. The blocker's own clearance through FcRn and the recycling of the anti-
CD20 antibodies (also IgG1) are not modelled: the antibodies in cartsim are
not given together with a blocker.
"""

from __future__ import annotations

import sympy as sp

from cartsim.model.ir import ModelBuilder


def add(b: ModelBuilder) -> None:
    b.component("fcrn")
    p = b.p
    volume = b.derive("fcrnb_v_patient", p("fcrnb_v") * p("weight_kg"))
    amount = b.state("fcrnb_central", "mg", "FcRn blocker (efgartigimod) in serum", 0)
    conc = b.observe("fcrnb_conc", amount / volume, "ug/mL", "FcRn blocker (efgartigimod) in serum")
    b.flow("fcrnb_central", None, sp.log(2) / p("fcrnb_halflife") * amount, "elimination")
    occupancy = b.observe("fcrn_occupancy", conc / (p("fcrnb_ec50") + conc), "1",
                          "share of FcRn blocked (0: none, 1: all)")
    b.observe("igg_catabolism_factor", 1 + (p("fcrn_igg_catabolism_fold") - 1) * occupancy, "1",
              "IgG breakdown relative to normal (1: FcRn free; fcrn_igg_catabolism_fold: FcRn fully blocked)")

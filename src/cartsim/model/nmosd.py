"""Neuromyelitis optica spectrum disorder (NMOSD): attacks driven by AQP4-IgG and autoreactive B cells.

In AQP4-IgG-positive NMOSD the autoantibody (``autoantibody``, ``model/antibodies.py``:
made by autoreactive plasmablasts and plasma cells) binds aquaporin-4 on astrocytes
and, with complement, destroys them; an attack needs the antibody to reach the CNS,
which B cells help bring about (antigen presentation to T cells, IL-6 from
plasmablasts). The attack intensity is therefore the product of the antibody level
and the lagged autoreactive B-cell activity (``ms_b_activity``, ``model/ms_activity.py``):

    nmosd_attack_rate * (1 - imax + imax * B activity) * autoantibody_level

A drug that removes B cells (inebilizumab, rituximab) lowers the share ``imax``
that depends on them; one that removes plasma cells or the antibody (BCMA CAR-T,
efgartigimod) lowers the antibody term. The attacks themselves, and the disability
each leaves, are drawn per patient from the cumulative intensity ``attack_cum``
(``cartsim.nmosd_outcomes``). Outside NMOSD the rate is zero (its table value).
"""

from __future__ import annotations

import sympy as sp

from cartsim.model.ir import ModelBuilder
from cartsim.model.ms_activity import YEAR


def add(b: ModelBuilder) -> None:
    b.component("nmosd")
    p = b.p
    imax = p("nmosd_attack_imax")
    act = sp.Symbol("ms_b_activity")
    days_per_year = b.constant("days_per_year", YEAR, "day/year", "days per year (rates per year to per day)")
    rate = b.observe("attack_rate", p("nmosd_attack_rate") / days_per_year
                     * (1 - imax + imax * act) * sp.Symbol("autoantibody_level"),
                     "1/day", "NMOSD attack intensity")
    b.state("attack_cum", "1", "expected NMOSD attacks since the start of the simulation", 0, cumulative=True)
    b.flow(None, "attack_cum", rate, "attacks")

"""The CNS compartment: meningeal/CSF B cells, CNS antibody-secreting cells, intrathecal IgG, CAR-T cells in the CNS.

Pools are relative to their untreated level (1 = baseline), because the
literature gives CSF counts and oligoclonal bands, not whole-compartment cell
numbers; the endpoints are fractions of baseline too.

* **CNS B cells** (``cns_b``) are renewed partly by immigration from blood (in
  proportion to blood B cells) and partly by local self-renewal in meningeal
  follicle-like niches, with a logistic niche limit. Without blood B cells the
  local niche alone sustains ``cns_b_niche_share`` of the baseline: this is the
  compartmentalised inflammation that depleting blood B cells does not remove.
  The renewal rate ``r`` and niche capacity ``K`` are derived so that baseline is
  a steady state with immigration share ``cns_b_influx_share``.
* **CNS antibody-secreting cells**: short-lived plasmablasts (``cns_pb``, CD19+,
  BCMA+) made from CNS B cells, which become long-lived plasma cells (``cns_pc``,
  CD19-, BCMA+). Both are in units of the baseline total, so the pb -> pc flow
  conserves cells. Intrathecal IgG synthesis (oligoclonal bands) is their
  secretion, weighted by the plasma-cell share of IgG secretion.
* **CAR-T cells** enter the CNS in proportion to body CAR-T cells (the entry is a
  negligible drain on the body pool) and leave or die at ``cns_car_k``; at
  equilibrium their density relative to the body pool is ``cns_car_ratio``.
  They kill CNS targets with the same per-cell potency as in the body.
* **Anti-CD20 antibodies** reach the CSF at ``mab_csf_ratio`` of serum and kill
  there with a reduced maximal effect (few effector cells and little complement
  in the CNS, ``mab_cns_effect``).
* Lymphodepleting chemotherapy (cyclophosphamide crosses the blood-brain
  barrier) kills CNS B cells like blood B cells.
"""

from __future__ import annotations

import sympy as sp

from cartsim.model.ir import ModelBuilder


def add(b: ModelBuilder) -> None:
    b.component("cns")
    p = b.p
    d = p("cns_b_turnover")
    f_in, x_loc = p("cns_b_influx_share"), p("cns_b_niche_share")
    r = b.derive("cns_b_renewal", d * (1 - (1 - f_in) * x_loc) / (1 - x_loc))
    cap = b.derive("cns_b_capacity", x_loc / (1 - d / r))

    x = b.state("cns_b", "1", "B cells in CSF and meninges (relative to baseline)", 1)
    blood_b = (sp.Symbol("b_naive_blood") + sp.Symbol("b_mem_blood")) / p("b_blood0")
    b.flow(None, "cns_b", f_in * d * blood_b, "immigration from blood (in proportion to blood B cells)")
    b.flow(None, "cns_b", r * x, "local self-renewal in meningeal niches")
    b.flow("cns_b", None, r * x**2 / cap, "niche limit (logistic)")

    # antibody-secreting cells, in units of their baseline total
    k_pbpc, d_pb, d_pc = p("pb_k_to_pc"), p("pb_death"), p("cns_pc_death")
    s_pb = b.derive("cns_pb0", d_pc / (k_pbpc + d_pc))
    k_diff = b.derive("cns_b_k_to_pb", (d_pb + k_pbpc) * s_pb)
    pb = b.state("cns_pb", "1", "plasmablasts in the CNS (share of baseline CNS antibody-secreting cells)", s_pb)
    pc = b.state("cns_pc", "1", "long-lived plasma cells in the CNS (share of baseline CNS antibody-secreting cells)",
                 1 - s_pb)
    b.flow("cns_b", None, d * x, "death and differentiation (turnover)")
    b.flow(None, "cns_pb", k_diff * x, "differentiation of CNS B cells to plasmablasts")
    b.flow("cns_pb", None, d_pb * pb, "plasmablast death")
    b.flow("cns_pb", "cns_pc", k_pbpc * pb, "plasma-cell niche entry")
    b.flow("cns_pc", None, d_pc * pc, "plasma-cell death")

    # CAR-T cells in the CNS, on the scale of the body's CAR-T pools (cells/uL-eq)
    k_car = p("cns_car_k")
    car = b.state("car_cns", "cells/uL-eq", "CAR-T cells in the CNS", 0)
    b.flow(None, "car_cns", k_car * p("cns_car_ratio") * (sp.Symbol("car_eff") + sp.Symbol("car_mem")),
           "entry from blood (negligible drain on the body pool)")
    b.flow("car_cns", None, k_car * car, "exit and death")
    potency = p("car_k_kill") * p("car_potency") * car
    kill19 = p("target_cd19") * potency
    killb = p("target_bcma") * potency

    # anti-CD20 antibody in the CSF (mab_csf_ratio * serum), with the effector-limited maximal effect of the CNS;
    # written, as in lymphoid tissue (anti_cd20.py), as a Hill term of the serum concentration
    c_serum = sp.Max(sp.Symbol("mab_free_conc"), 0)
    h, ec50 = p("mab_hill"), p("mab_ec50")
    kill20 = p("mab_cns_effect") * p("mab_kmax") * c_serum**h / ((ec50 / p("mab_csf_ratio"))**h + c_serum**h)

    b.flow("cns_b", None, (kill19 + kill20 + sp.Symbol("ld_kill")) * x, "killed by CAR-T, anti-CD20 and chemotherapy")
    b.flow("cns_pb", None, (kill19 + killb) * pb, "killed by CAR-T cells")
    b.flow("cns_pc", None, killb * pc, "killed by BCMA CAR-T cells")

    phi = p("igg_pc_share")
    b.observe("cns_plasma_cells", pb + pc, "1", "CNS antibody-secreting cells (relative to baseline)")
    b.observe("intrathecal_igg", (1 - phi) * pb / s_pb + phi * pc / (1 - s_pb), "1",
              "intrathecal IgG synthesis, oligoclonal bands (relative to baseline)")
    b.observe("car_csf_per_uL", p("f_blood_lymph") * car, "cells/uL", "CAR-T cells in CSF")

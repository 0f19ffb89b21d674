"""Total serum IgG and the pathogenic autoantibody, made by plasmablasts and plasma cells.

Every antibody-secreting cell secretes at the same per-cell rate within its
class (plasmablast or plasma cell); the rates are derived from the baseline
IgG level and the share of IgG made by long-lived plasma cells. The
autoantibody is the IgG made by the autoreactive cells, so its level and its
fall under therapy follow from where the autoreactive cells are. Both are
broken down at the IgG rate that FcRn recycling sets (``model/fcrn.py``).
"""

from __future__ import annotations

import sympy as sp

from cartsim.model.ir import ModelBuilder


def add(b: ModelBuilder) -> None:
    b.component("antibodies")
    p = b.p
    k_igg = sp.log(2) / p("igg_halflife")
    pb0, pba0, pc0, pc19_0, pca0 = (sp.Symbol(n) for n in ("pb0", "pb_auto0", "pc0", "pc_cd19_0", "pc_auto0"))
    q_pc = b.derive("igg_q_pc", p("igg_pc_share") * k_igg * p("igg0") / (pc0 + pc19_0 + pca0))
    q_pb = b.derive("igg_q_pb", (1 - p("igg_pc_share")) * k_igg * p("igg0") / (pb0 + pba0))
    pb, pba, pca = (sp.Symbol(n) for n in ("pb", "pb_auto", "pc_auto"))
    pc = sp.Symbol("pc") + sp.Symbol("pc_cd19")     # CD19- and CD19+ plasma cells secrete alike
    b.state("igg", "g/L", "total serum IgG", p("igg0"))
    aab0 = b.derive("autoantibody0", (q_pb * pba0 + q_pc * pca0) / k_igg)
    aab = b.state("autoantibody", "g/L", "pathogenic autoantibody (IgG from autoreactive cells)", aab0)
    # the autoantibody relative to its untreated level drives antibody-mediated disease (model/nmosd.py,
    # model/mg.py); a floor far below any disease's level keeps it defined where there is none (health)
    b.observe("autoantibody_level", aab / (aab0 + p("autoantibody_floor")), "1",
              "pathogenic autoantibody relative to its untreated level")
    b.flow(None, "igg", q_pb * (pb + pba) + q_pc * (pc + pca), "secretion")
    # FcRn recycling sets how fast IgG is broken down; a blocker speeds it up (model/fcrn.py)
    k_cat = k_igg * sp.Symbol("igg_catabolism_factor")
    b.flow("igg", None, k_cat * sp.Symbol("igg"), "catabolism")
    b.flow(None, "autoantibody", q_pb * pba + q_pc * pca, "secretion by autoreactive cells")
    b.flow("autoantibody", None, k_cat * sp.Symbol("autoantibody"), "catabolism")

"""Myasthenia gravis (MG): muscle weakness driven by the anti-acetylcholine-receptor antibody.

Anti-AChR IgG (``autoantibody``, ``model/antibodies.py``) blocks, cross-links and,
with complement, destroys acetylcholine receptors at the neuromuscular junction.
The junction's damage ``mg_junction`` (1 at the untreated steady state) follows
the antibody level with the half-life ``mg_junction_halflife`` of receptor loss and
repair, so weakness lags the antibody by days to weeks. The scores are

    MG-ADL = mg_adl0 * (1 - mg_antibody_share * (1 - mg_junction))
    QMG    = qmg0    * (1 - mg_qmg_antibody_share * (1 - mg_junction))

``mg_antibody_share`` is the share of the weakness that goes away when the
antibody is gone; the rest is fixed damage (and the part of a score that is
never zero in a patient's life). QMG follows the same junction state with a
share of its own, each fitted to the responders of its scale in ADAPT: the
QMG examines strength and fatigability that recover less than the daily
activities patients report. Outside MG the baseline scores are
zero (their table values). Visit-by-visit scores, with the improvement that
patients also have on placebo, are drawn per patient (``cartsim.mg_outcomes``).
"""

from __future__ import annotations

import sympy as sp

from cartsim.model.ir import ModelBuilder


def add(b: ModelBuilder) -> None:
    b.component("mg")
    p = b.p
    k = sp.log(2) / p("mg_junction_halflife")
    junction = b.state("mg_junction", "1", "anti-AChR damage at the neuromuscular junction (relative to untreated)",
                       sp.Symbol("autoantibody0") / (sp.Symbol("autoantibody0") + p("autoantibody_floor")))
    b.flow(None, "mg_junction", k * sp.Symbol("autoantibody_level"), "receptor loss driven by the antibody")
    b.flow("mg_junction", None, k * junction, "receptor repair")
    b.observe("mg_adl", p("mg_adl0") * (1 - p("mg_antibody_share") * (1 - junction)), "points",
              "MG activities of daily living score (0-24; model mean)")
    b.observe("qmg", p("qmg0") * (1 - p("mg_qmg_antibody_share") * (1 - junction)), "points",
              "quantitative MG score (0-39; model mean)")

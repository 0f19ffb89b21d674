"""Myasthenia gravis (MG): muscle weakness driven by the anti-acetylcholine-receptor antibody.

Anti-AChR IgG (``autoantibody``, ``model/antibodies.py``) blocks, cross-links and,
with complement, destroys acetylcholine receptors at the neuromuscular junction.
The junction's damage ``mg_junction`` (1 at the untreated steady state) follows
the antibody level with the half-life ``mg_junction_halflife`` of receptor loss and
repair, so weakness lags the antibody by days to weeks. Blocking complement C5
(``model/complement.py``) spares the share ``mg_complement_share`` of that loss
which the membrane attack complex causes; that share differs between patients
(its odds ``mg_complement_odds`` are log-normal).

How much of that damage a patient feels is set by the safety factor of
neuromuscular transmission: a nerve impulse normally releases several times the
transmitter needed to fire the muscle fibre, so a junction fails only once its
receptor loss eats up that margin, and the share of failing junctions rises
steeply, not in proportion, with the damage (Wood & Slater, Prog Neurobiol
2001). That share is a Hill function of the damage, 1 at the untreated damage:

    failing = j^h (1 + K^h) / (j^h + K^h)      j = mg_junction, K = mg_junction_k50, h = mg_junction_hill
    MG-ADL  = mg_adl0 * (1 - mg_antibody_share * (1 - failing))
    QMG     = qmg0    * (1 - mg_qmg_antibody_share * (1 - failing))

A short, partial fall of the antibody (efgartigimod) then helps some patients
much and others little, and a deep, lasting fall (B-cell or plasma-cell
depletion) lifts nearly all the antibody-driven weakness. ``mg_antibody_share``
is the share of the weakness that goes away when the antibody is gone; the rest
is fixed damage (and the part of a score that is never zero in a patient's life).
The QMG follows the same junctions with a share of its own: it examines strength
and fatigability that recover less than the daily activities patients report.
Outside MG the baseline scores are zero (their table values). Visit-by-visit
scores, with the improvement that patients also have on placebo and the
week-to-week swings of the disease, are drawn per patient (``cartsim.mg_outcomes``).
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
    # a blocked C5 (model/complement.py) spares the complement-mediated share of the receptor loss
    spared = sp.Symbol("mg_complement_share") * sp.Symbol("c5_block")
    b.flow(None, "mg_junction", k * sp.Symbol("autoantibody_level") * (1 - spared),
           "receptor loss driven by the antibody")
    b.flow("mg_junction", None, k * junction, "receptor repair")
    h, k50 = p("mg_junction_hill"), p("mg_junction_k50")
    # share of the untreated weakness from junctions that fail; written into the scores (not an observable of
    # its own), so that outside MG, where the baseline scores are 0, its threshold and steepness act on nothing
    failing = junction ** h * (1 + k50 ** h) / (junction ** h + k50 ** h)
    b.observe("mg_adl", p("mg_adl0") * (1 - p("mg_antibody_share") * (1 - failing)), "points",
              "MG activities of daily living score (0-24; model mean)")
    b.observe("qmg", p("qmg0") * (1 - p("mg_qmg_antibody_share") * (1 - failing)), "points",
              "quantitative MG score (0-39; model mean)")
    # the complement-mediated share varies between patients: its odds are log-normal (the share logit-normal,
    # so it stays within 0-1); declared last, so the patients' other random effects keep their draws
    odds = p("mg_complement_odds")
    b.derive("mg_complement_share", odds / (1 + odds))

"""Terminal complement (C5) inhibition by an antibody (ravulizumab, eculizumab), and its effect at the
neuromuscular junction.

Anti-AChR IgG1 and IgG3 fix complement: the membrane attack complex lyses the
folds of the postsynaptic membrane and takes receptors with it. Blocking C5
stops that pathway but leaves the antibody's other ways of removing receptors
(cross-linking and internalisation, direct block), so only a share
``mg_complement_share`` of the antibody-driven receptor loss (``model/mg.py``)
goes while C5 is blocked. The antibody level is not changed.

The inhibitor's serum level is a one-compartment model with first-order
elimination (target-mediated clearance is not modelled: free C5 is blocked
throughout a regimen, Howard 2023); the blocked share of C5 is an Emax function
of the level.
"""

from __future__ import annotations

import sympy as sp

from cartsim.model.ir import ModelBuilder


def add(b: ModelBuilder) -> None:
    b.component("complement")
    p = b.p
    amount = b.state("c5i_central", "mg", "C5 inhibitor (ravulizumab, eculizumab) in serum", 0)
    conc = b.observe("c5i_conc", amount / p("c5i_v"), "ug/mL", "C5 inhibitor (ravulizumab, eculizumab) in serum")
    b.flow("c5i_central", None, sp.log(2) / p("c5i_halflife") * amount, "elimination")
    b.observe("c5_block", conc / (p("c5i_ec50") + conc), "1", "share of terminal complement (C5) blocked")

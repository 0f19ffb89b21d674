"""A malignant CD19+ clone (B-ALL, lymphoma): the target burden of the cancer setting.

Zero in autoimmune disease and in healthy people; grows logistically when present.
"""

from __future__ import annotations

import sympy as sp

from cartsim.model.ir import ModelBuilder


def add(b: ModelBuilder) -> None:
    b.component("malignancy")
    mal = b.state("malignant", "cells/uL-eq", "malignant CD19+ cells", b.p("tumour_burden"))
    b.flow(None, "malignant", b.p("tumour_growth") * mal * (1 - mal / b.p("tumour_capacity")),
           "tumour growth")
    kill = sp.Symbol("kill_cd19") * mal
    b.flow("malignant", None, kill, "killed by CAR-T cells")
    b.flow("malignant", None, sp.Symbol("ld_kill") * mal, "killed by lymphodepletion")
    b.observe("kill_flux_tumour", kill, "cells/uL-eq/day", "malignant cells killed by CAR-T")

"""A malignant CD19+ clone (B-ALL, lymphoma): the target burden of the cancer setting.

Zero in autoimmune disease and in healthy people; grows logistically when present.
Relapsed/refractory disease is by definition resistant to chemotherapy, so the
low-dose lymphodepleting regimen kills malignant cells far less than it kills
normal lymphocytes (``tumour_ld_sensitivity``): most of the tumour is still
there when the CAR-T cells arrive.
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
    b.flow("malignant", None, b.p("tumour_ld_sensitivity") * sp.Symbol("ld_kill") * mal,
           "killed by lymphodepletion (chemorefractory)")
    b.observe("kill_flux_tumour", kill, "cells/uL-eq/day", "malignant cells killed by CAR-T")

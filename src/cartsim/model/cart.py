"""CAR-T cell kinetics: effector and memory cells, antigen-driven expansion.

Effectors expand on antigen (target cells expressing the CAR's target) and
with the homeostatic boost, kill targets, and contract; a small share becomes
memory that persists and re-activates when antigen returns. Without
antigen this reproduces the empirical multiphasic shape of Stein 2019:
contraction at rate ``car_alpha`` and a persisting fraction ``car_fb`` that
decays at ``car_beta``; the effector-to-memory rate is derived from them.
Activation is a programme, not a switch: antigen drives the activated share
``car_act`` up, and activated cells keep dividing for several days after the
antigen is gone (Kaech & Ahmed 2001), which is why CAR-T cells peak around day
9-10 even when targets are cleared within days. Contraction is the death of
effectors that have left the programme: activated cells in clonal burst do not
die at ``car_alpha`` (Kaech & Ahmed 2001: contraction follows expansion). So
``car_alpha``, with Stein 2019's variability between patients, shapes the
decline after the peak and not the peak itself, as in Stein's model, where the
peak has a variability of its own; in cartsim the peak's spread comes from the
expansion rate's, fitted to the Kymriah label (bench/calibrate_spread.py).
Costimulation (CD28 vs 4-1BB) scales expansion and memory formation. A CAR made from mRNA (Descartes-08) is
expressed for about a week and not passed on when cells divide: such a product
does not expand (``costim_expansion`` 0), its cells lose the CAR at
``car_expression_loss``, and it signals more weakly (``car_signal``: its cells
kill and are activated less), fitted to the absence of CRS after Descartes-08.
These follow from what each product sets (its CD4:CD8 ratio, costimulatory
domain and CAR encoding) as derived parameters, so the
SBML export and the report's equations show them. So does the make-up of an
infusion: a dose record counts CAR+ cells, and the model's bioavailability
(NONMEM's F) of each state splits them into effector and memory cells and adds
the untransduced T cells infused with them.

Exhaustion: CAR-T cells that keep meeting a large excess of targets (a
lymphoma's burden, not the few B cells left after lymphodepletion in
autoimmune disease) lose their capacity to divide, and regain it slowly once
the targets are gone (Good 2021; Wherry & Kurachi 2015), CD28 products
faster than 4-1BB ones (Long AH et al. Nat Med 2015). They keep killing:
exhausted T cells lose their functions in order, proliferation first and
cytotoxicity last (Wherry 2011), and B-cell aplasia follows CD19 CAR-T in
lymphoma also where the tumour does not respond. This is
why the CAR-T peak after axi-cel in lymphoma is no higher than in lupus
(Mueller F et al. Blood 2025), although its targets outnumber a lupus
patient's B cells many times; its sizes are fitted to ZUMA-1's peak, to
that similarity and to the similar expansion of a 4-1BB and a CD28 product in
lymphoma (tisa-cel and axi-cel, Clin Cancer Res 2022;28:3378).

Immunity against the CAR: endogenous T cells that recognise the CAR construct
(its foreign scFv and junctions) are primed while CAR-T cells are present, at a
rate that rises steeply with the recovery of the patient's own T cells, and
then eliminate CAR-T cells. Anti-CAR T cells were found when a re-infused CD19
CAR-T failed to expand (Mueller F et al. Nat Med 2025), and immune-competent
autoimmune patients lose CAR-T cells sooner than lymphopenic cancer patients
(Mueller F et al. Blood 2025). Competence for priming is a steep function of
the blood T-cell count, half-maximal at ``anti_car_t_ref``: almost none in a
lymphopenic cancer patient, full once a lupus patient's T cells have recovered
from lymphodepletion. Its rate, threshold and steepness are fitted so that
CAR-T cells leave the blood about 2 months after infusion in lupus (YTB323)
while they persist for years in B-ALL (Stein 2019; bench/calibrate_anti_car.py).
The response expands for as long as CAR-T cells prime it, like any
antigen-driven T-cell response (uncapped: held at the size of one primed
response, it let CAR-T cells that re-expanded on returning B cells persist for
years in some lupus patients, against clearance within months in YTB323), and
is remembered: it persists after the CAR-T cells are gone and blunts
a second infusion of the same product.
"""

from __future__ import annotations

import sympy as sp

from cartsim.model.ir import ModelBuilder


def add(b: ModelBuilder) -> None:
    b.component("car_t")
    _product(b)
    e = b.state("car_eff", "cells/uL-eq", "CAR-T effector cells", 0)
    m = b.state("car_mem", "cells/uL-eq", "CAR-T memory cells", 0)
    # an infusion's dose records count its CAR+ cells (per uL of blood-equivalent volume); the model splits them
    # into effector and memory phenotypes and adds the untransduced T cells given with them
    share, tx = b.p("car_memory_share"), b.p("car_transduction")
    b.bioavailability("car_eff", 1 - share, "infused CAR+ cells with effector phenotype")
    b.bioavailability("car_mem", share, "infused CAR+ cells with memory phenotype")
    b.bioavailability("t_endo", (1 - tx) / tx, "untransduced T cells infused with each CAR+ cell")
    total = b.observe("car_total", e + m, "cells/uL-eq", "all CAR-T cells")
    b.observe("car_blood_per_uL", b.p("f_blood_lymph") * total, "cells/uL", "CAR-T cells in blood")

    antigen = b.observe(
        "antigen", b.p("target_cd19") * sp.Symbol("cd19_load") + b.p("target_bcma") * sp.Symbol("bcma_load"),
        "cells/uL-eq", "target cells the CAR recognises")
    n = b.p("car_stim_hill")
    stim = b.observe("car_stimulation", antigen**n / (antigen**n + b.p("car_k_stim")**n), "1",
                     "fraction of maximal antigen stimulation (switch-like in antigen density)")
    alpha, beta = b.p("car_alpha"), b.p("car_beta")
    k_em = b.derive("car_k_em", b.p("car_fb") * (alpha - beta))
    d_e = b.derive("car_d_eff", alpha - k_em)
    boost = sp.Symbol("homeostatic_boost")
    ld_kill = sp.Symbol("ld_kill")

    act = b.state("car_act", "1", "activated (dividing) share of CAR-T effectors", 0)
    # No activation before CAR-T cells are infused: a smooth gate (a step would stall implicit solvers
    # whenever round-off leaves the count slightly negative after CAR-T cells are cleared).
    present = (e + m)**2 / ((e + m)**2 + b.p("car_presence_eps")**2)
    # exhaustion by a large target burden: the exhausted share no longer divides (it still kills: exhausted T
    # cells lose their functions in order, proliferation first and killing last)
    burden = b.observe("car_exhausting_stimulation",
                       antigen**2 / (antigen**2 + b.p("car_exh_antigen")**2), "1",
                       "stimulation by a target burden that exhausts CAR-T cells")
    exh = b.state("car_exh", "1", "exhausted share of CAR-T cells", 0)
    b.flow(None, "car_exh", present * b.p("car_k_exh") * b.p("costim_exhaustion") * b.p("car_signal") * burden * (1 - exh),
           "exhaustion by a target excess")
    b.flow("car_exh", None, b.p("car_exh_recovery") * exh, "recovery from exhaustion")
    b.flow(None, "car_act", present * b.p("car_k_on") * b.p("car_signal") * stim * (1 - act), "activation by antigen")
    b.flow("car_act", None, act / b.p("car_program"), "end of the proliferation programme")
    b.flow(None, "car_eff", (b.p("car_r_exp") * b.p("costim_expansion") * act * (1 - exh) + boost) * e,
           "antigen-driven and homeostatic expansion")
    b.flow("car_mem", "car_eff", b.p("car_r_act") * stim * m, "memory re-activation by antigen")
    b.flow("car_eff", "car_mem", k_em * b.p("costim_memory") * e, "memory formation")
    b.flow("car_eff", None, d_e * (1 - act) * e, "effector contraction (death) once the programme has ended")
    b.flow("car_mem", None, beta * m, "memory decay")
    b.flow("car_eff", None, ld_kill * e, "killed by residual lymphodepletion")
    b.flow("car_mem", None, ld_kill * m, "killed by residual lymphodepletion")
    # a CAR encoded by mRNA (Descartes-08) is lost as the mRNA decays and is diluted by division: the cells
    # leave the CAR-T pools (they become ordinary T cells); zero for a CAR in the genome (viral vectors)
    b.flow("car_eff", None, b.p("car_expression_loss") * e, "loss of CAR expression (mRNA CAR)")
    b.flow("car_mem", None, b.p("car_expression_loss") * m, "loss of CAR expression (mRNA CAR)")

    anti = b.state("anti_car", "1", "T-cell immunity against the CAR (relative to a fully primed response)",
                   b.p("anti_car0"))
    car_blood = b.p("f_blood_lymph") * (e + m)
    t_ratio = (sp.Symbol("t_blood_per_uL") / b.p("anti_car_t_ref"))**b.p("anti_car_competence_hill")
    competence = b.observe("anti_car_competence", t_ratio / (1 + t_ratio), "1",
                           "T-cell competence for priming: half at anti_car_t_ref (lymphopenia primes poorly)")
    b.flow(None, "anti_car",
           b.p("anti_car_r") * competence * car_blood / (car_blood + b.p("anti_car_k")) * anti,
           "priming and expansion by CAR-T cells")
    clear = b.observe("anti_car_kill", b.p("anti_car_kill_max") * anti, "1/day", "CAR-T elimination by anti-CAR immunity")
    b.flow("car_eff", None, clear * e, "killed by anti-CAR T cells")
    b.flow("car_mem", None, clear * m, "killed by anti-CAR T cells")

    b.event("retreatment", "autoreactive_level", "retreat_threshold", "car_eff", "car_retreat_dose",
            "a second infusion of the same CAR-T product when autoreactive clones return", always=False)

    potency = b.p("car_k_kill") * b.p("car_potency") * (e + b.p("car_mem_kill") * m)
    b.observe("kill_cd19", b.p("target_cd19") * potency, "1/day", "kill rate of each CD19+ cell")
    b.observe("kill_bcma", b.p("target_bcma") * potency, "1/day", "kill rate of each BCMA+ cell")


def _product(b: ModelBuilder) -> None:
    """What the infused product's construct and make-up change, from the values each product sets
    (``cartsim/data/products.toml``): its CD4:CD8 ratio, its costimulatory domain, an mRNA CAR."""
    p = b.p
    f8 = 1 / (1 + p("car_cd4_cd8_ratio"))                 # CD8+ share of the CAR-T cells
    w = p("cd4_kill_weight")
    cd28 = sp.Eq(p("car_costim_cd28"), 1)                 # switches: 1 or 0
    mrna = sp.Eq(p("car_mrna"), 1)
    # an mRNA CAR signals more weakly than one from a viral vector: its cells kill and are activated less
    signal = b.derive("car_signal", sp.Piecewise((p("mrna_car_signal"), mrna), (1, True)))
    b.derive("car_potency", signal * (f8 + w * (1 - f8)) / (sp.Float(0.5) + sp.Float(0.5) * w))   # 1 at CD4:CD8 = 1:1
    # an mRNA CAR is not passed on when cells divide: the product does not expand
    b.derive("costim_expansion", sp.Piecewise((0, mrna), (p("cd28_expansion_factor"), cd28), (1, True)))
    b.derive("costim_memory", sp.Piecewise((p("cd28_memory_factor"), cd28), (1, True)))
    # 4-1BB signalling protects CAR-T cells from exhaustion that CD28 signalling drives (Long AH et al. 2015)
    b.derive("costim_exhaustion", sp.Piecewise((p("cd28_exhaustion_factor"), cd28), (1, True)))
    b.derive("car_expression_loss", sp.Piecewise((sp.log(2) / p("car_expression_halflife"), mrna), (0, True)))

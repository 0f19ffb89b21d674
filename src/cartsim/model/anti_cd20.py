"""B-cell depleting antibodies: anti-CD20 (ocrelizumab, ofatumumab, rituximab) and anti-CD19
(inebilizumab): PK and B-cell depletion.

One structure covers the four antibodies; their values are set per antibody
(``cartsim/data/antibodies.toml``), as a product sets CAR-T parameters:

* two-compartment PK (central ``mab_central``, peripheral ``mab_peripheral``, mg) with
  an SC depot (first-order absorption ``mab_ka``, bioavailability ``mab_f``);
* linear clearance that falls with time since the first dose,
  ``CL(t) = CL_inf + CL_T exp(-k_des t)`` (ocrelizumab, Gibiansky 2021): the time term
  is a clock state set to 1 by the first dose and decaying at ``k_des``;
* target-mediated disposition in the quasi-steady-state form (ofatumumab, Yu 2022): a
  total target ``cd20_target`` whose synthesis falls from ``ksyn0`` towards
  ``ksyn_inf`` over the same clock; the free drug is the QSS root. With no target
  (``mab_r0 = 0``) the free drug equals the total and the PK is the plain
  two-compartment model;
* clearance and volumes scale with body weight by power laws.

The free serum concentration kills the B-lineage cells that carry the target at
``kmax C^h / (EC50^h + C^h)``, the Emax model of Yu 2022. CD20 is on naive,
memory and autoreactive B cells and the CD20+ share of marrow precursors;
CD19 is on all of these and also on plasmablasts and the CD19+ plasma cells
(``model/bcells.py``), which is why an anti-CD19 antibody lowers the
short-lived antibody-secreting cells that an anti-CD20 antibody spares. The
switch ``mab_target_cd19`` (0: CD20, 1: CD19) is set by the antibody's data.
Cells in lymphoid tissue and marrow see a fraction of the serum level (the
antibody biodistribution coefficient), which is why tissue B cells outlast
blood B cells. Only about 0.1% of the serum level reaches the CSF.
"""

from __future__ import annotations

import sympy as sp

from cartsim.model.ir import ModelBuilder

# B-lineage pools an antibody can reach: (share of the pool that carries CD20, whether it sits in blood)
CD20_POOLS = {"b_pre": ("cd20_pre_share", False), "b_naive_blood": (None, True), "b_naive_tissue": (None, False),
              "b_mem_blood": (None, True), "b_mem_tissue": (None, False), "b_auto": (None, False)}
# CD19+ but CD20- pools (plasmablasts and CD19+ plasma cells, in lymphoid tissue and marrow): anti-CD19 only
CD19_ONLY_POOLS = ("pb", "pb_auto", "pc_cd19")


def add(b: ModelBuilder) -> None:
    b.component("anti_cd20")
    p = b.p
    w = p("weight_kg") / p("mab_wt_ref")
    v1 = b.derive("mab_v1_patient", p("mab_v1") * w**p("mab_wt_exp_v"))
    v2 = b.derive("mab_v2_patient", p("mab_v2") * w**p("mab_wt_exp_v"))
    cl_scale = w**p("mab_wt_exp_cl")

    depot = b.state("mab_depot", "mg", "anti-CD20 antibody at the SC injection site", 0)
    a1 = b.state("mab_central", "mg", "anti-CD20 antibody in serum (free and target-bound)", 0)
    a2 = b.state("mab_peripheral", "mg", "anti-CD20 antibody in tissue", 0)
    b.state("mab_started", "1", "1 from the first antibody dose on", 0)
    clock = b.state("mab_clock", "1", "exp(-k_des * time since the first antibody dose); 0 before it", 0)
    started = sp.Symbol("mab_started")
    r = b.state("cd20_target", "nM", "total CD20 target in serum (QSS target-mediated disposition)", p("mab_r0"))

    # nmol/L to mg/L: kDa = g/mmol, so 1 nM of a mab_mw_kda antibody is mab_mw_kda / 1000 mg/L
    mg_per_l_per_nm = b.derive("mab_mg_per_l_per_nm", p("mab_mw_kda") * sp.Rational(1, 1000))
    ctot = a1 / v1 / mg_per_l_per_nm
    kss = b.derive("mab_kss", p("mab_kd") + p("mab_kint") * p("mab_kd") / p("mab_koff"))
    d = ctot - r - kss
    root = sp.sqrt(d**2 + 4 * kss * ctot)
    # the QSS root; its cancellation when d < 0 costs eps * (R + Kss) / free, below 1e-10 at any free level
    # that matters for killing (the rationalised form would need a switch, which stalls implicit solvers)
    free_nm = (d + root) / 2
    conc = b.observe("mab_conc", a1 / v1, "ug/mL", "anti-CD20 antibody in serum (total)")
    free = b.observe("mab_free_conc", free_nm * mg_per_l_per_nm, "ug/mL", "free anti-CD20 antibody in serum")
    complex_nm = r * free_nm / (kss + free_nm)   # = ctot - free at QSS, without the cancellation (0 when R = 0)

    b.flow("mab_depot", "mab_central", p("mab_ka") * p("mab_f") * depot, "SC absorption")
    b.flow("mab_depot", None, p("mab_ka") * (1 - p("mab_f")) * depot, "presystemic loss (1 - F)")
    cl = (p("mab_cl_inf") + p("mab_cl_t") * clock) * cl_scale
    b.flow("mab_central", None, cl * free, "linear clearance (time-varying)")
    b.flow("mab_central", None, p("mab_kint") * complex_nm * mg_per_l_per_nm * v1, "internalisation of bound drug")
    b.flow("mab_central", "mab_peripheral", p("mab_q") * cl_scale * free, "distribution")
    b.flow("mab_peripheral", "mab_central", p("mab_q") * cl_scale * a2 / v2, "redistribution")
    b.flow("mab_clock", None, p("mab_k_des") * clock, "decay of the time-varying clearance")

    ksyn0 = b.derive("mab_ksyn0", p("mab_kdeg") * p("mab_r0"))
    ksyn = ksyn0 * (1 - (1 - p("mab_ksyn_inf_frac")) * (started - clock))
    b.flow(None, "cd20_target", ksyn, "target synthesis (falls after the first dose)")
    b.flow("cd20_target", None, p("mab_kdeg") * (r - complex_nm), "free target turnover")
    b.flow("cd20_target", None, p("mab_kint") * complex_nm, "internalisation of bound target")

    h, ec50 = p("mab_hill"), p("mab_ec50")
    c_blood = sp.Max(free, 0)
    # tissue concentration = mab_tissue_ratio * blood: the same Hill term of the blood concentration, with the
    # EC50 in blood units (one power of the concentration serves blood, tissue and CSF: cns.py)
    kill = b.observe("kill_cd20", p("mab_kmax") * c_blood**h / (ec50**h + c_blood**h), "1/day",
                     "kill rate of each CD20+ B cell in blood by the antibody")
    kill_t = b.observe("kill_cd20_tissue",
                       p("mab_kmax") * c_blood**h / ((ec50 / p("mab_tissue_ratio"))**h + c_blood**h), "1/day",
                       "kill rate of each CD20+ B cell in lymphoid tissue and marrow")
    b.observe("mab_csf_conc", p("mab_csf_ratio") * conc, "ug/mL", "anti-CD20 antibody in CSF")
    on_cd19 = p("mab_target_cd19")
    for pool, (share, in_blood) in CD20_POOLS.items():
        cd20 = p(share) if share else 1
        rate = (kill if in_blood else kill_t) * (on_cd19 + (1 - on_cd19) * cd20)
        b.flow(pool, None, rate * sp.Symbol(pool), "killed by the B-cell depleting antibody")
    for pool in CD19_ONLY_POOLS:
        b.flow(pool, None, on_cd19 * kill_t * sp.Symbol(pool), "killed by an anti-CD19 antibody")

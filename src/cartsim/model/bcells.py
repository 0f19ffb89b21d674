"""B-cell lineage: marrow precursors, naive and memory B cells in blood and
lymphoid tissue, an autoreactive clone, plasmablasts and long-lived plasma cells.

Counts are in cells per microlitre of blood *volume equivalent* (cells/uL-eq):
a pool's total cell number divided by the blood volume. For blood pools this is
the ordinary blood count; for tissue pools it keeps all B cells on one scale,
and cells moving between pools conserve number.

Untreated, every pool is at steady state: supply, self-renewal and exchange
rates are derived from the healthy blood count, the blood share of
lymphocytes and the measured turnover of naive and memory B cells.
"""

from __future__ import annotations

import sympy as sp

from cartsim.model.ir import ModelBuilder


def add(b: ModelBuilder) -> None:
    b.component("b_cells")
    p = b.p
    f_blood = p("f_blood_lymph")
    tn, tm = p("b_turnover_naive"), p("b_turnover_memory")
    a_n = p("b_k_naive_to_memory")
    k_tb = p("b_k_tissue_to_blood")
    k_mat = 1 / p("b_precursor_transit")

    nb0 = b.derive("b_naive_blood0", p("b_blood0") * p("b_naive_share"))
    mb0 = b.derive("b_mem_blood0", p("b_blood0") * (1 - p("b_naive_share")))
    nt0 = b.derive("b_naive_tissue0", nb0 * (1 / f_blood - 1))
    mt0 = b.derive("b_mem_tissue0", mb0 * (1 / f_blood - 1))
    n_tot0, m_tot0 = nb0 + nt0, mb0 + mt0
    k_npb = p("b_k_naive_to_pb")
    d_n = b.derive("b_d_naive", tn - a_n - k_npb)
    rho_m = b.derive("b_rho_memory", tm - a_n * n_tot0 / m_tot0)
    d_m = b.derive("b_d_memory", tm - p("b_k_memory_to_pb"))
    k_bt_n = b.derive("b_k_blood_to_tissue_naive", (k_tb + tn) * nt0 / nb0)
    k_bt_m = b.derive("b_k_blood_to_tissue_memory", ((k_tb + tm - rho_m) * mt0 - a_n * n_tot0) / mb0)
    s_pre = b.derive("b_supply_precursor", tn * n_tot0)

    # autoreactive clone: mostly self-renewing, slowly recruited from naive cells
    a0 = b.derive("b_auto0", p("auto_share") * m_tot0)
    rho_a = p("auto_self_renewal") * tm
    recruit = b.derive("auto_recruitment", (tm - rho_a) * a0 / (a_n * nt0))

    # plasmablasts and plasma cells. Plasma cells in two pools (Mei HE et al. Blood 2015;125:1739): CD19+
    # plasma cells, renewed from new plasmablasts, and CD19- plasma cells, the long-lived, static pool.
    # Plasmablasts come from memory B cells and, in primary (extrafollicular) responses, from naive B cells.
    # They enter either niche; the split follows from the CD19+ pool's share of plasma-cell antibody and the
    # two pools' lifespans, and the niche-entry rate from the number of plasma cells at steady state (pb0 and
    # the entry rate solve pb0 = supply / (d_pb + k_pc) with k_pc pb0 lifespan = pc_count0, where supply =
    # k_mpb m_tot0 + k_npb n_tot0).
    k_mpb, d_pb = p("b_k_memory_to_pb"), p("pb_death")
    d_pc, d_pc19 = p("pc_death"), sp.log(2) / p("pc_cd19_halflife")
    s19 = p("pc_cd19_share")
    f19 = b.derive("pc_cd19_entry_share", s19 * d_pc19 / (s19 * d_pc19 + (1 - s19) * d_pc))
    inflow = b.derive("pc_inflow0", p("pc_count0") / ((1 - f19) / d_pc + f19 / d_pc19))
    supply = k_mpb * m_tot0 + k_npb * n_tot0
    k_pbpc = b.derive("pc_k_niche", d_pb * inflow / (supply - inflow))
    pb0 = b.derive("pb0", supply / (d_pb + k_pbpc))
    pba0 = b.derive("pb_auto0", k_mpb * a0 / (d_pb + k_pbpc))
    pc0 = b.derive("pc0", (1 - f19) * k_pbpc * pb0 / d_pc)
    pc19_0 = b.derive("pc_cd19_0", f19 * k_pbpc * pb0 / d_pc19)
    pca0 = b.derive("pc_auto0", k_pbpc * pba0 / p("pc_auto_death"))

    # CD19-negative lymphoid progenitors (CLP / pre-pro-B), relative to normal: spared by
    # CD19 CAR-T but hit by lymphodepleting chemotherapy; they regrow logistically, and the
    # CD19+ precursor supply follows them. This is the slow step of B-cell regeneration.
    prog = b.state("b_prog", "1", "CD19- lymphoid progenitors in marrow (relative to normal)", 1)
    g = p("prog_regrowth")
    b.flow(None, "b_prog", g * prog, "progenitor self-renewal")
    b.flow("b_prog", None, g * prog**2, "progenitor niche limit (logistic)")
    b.flow("b_prog", None, p("prog_ld_sensitivity") * sp.Symbol("ld_kill") * prog, "killed by lymphodepletion")
    pre = b.state("b_pre", "cells/uL-eq", "CD19+ B-cell precursors in marrow", s_pre / k_mat)
    nb = b.state("b_naive_blood", "cells/uL", "naive B cells in blood", nb0)
    nt = b.state("b_naive_tissue", "cells/uL-eq", "naive B cells in lymphoid tissue", nt0)
    mb = b.state("b_mem_blood", "cells/uL", "memory B cells in blood", mb0)
    mt = b.state("b_mem_tissue", "cells/uL-eq", "memory B cells in lymphoid tissue", mt0)
    au = b.state("b_auto", "cells/uL-eq", "autoreactive memory B cells (tissue)", a0)
    pb = b.state("pb", "cells/uL-eq", "plasmablasts (CD19+, BCMA+)", pb0)
    pba = b.state("pb_auto", "cells/uL-eq", "autoreactive plasmablasts", pba0)
    pc = b.state("pc", "cells/uL-eq", "long-lived plasma cells (CD19-, BCMA+)", pc0)
    pc19 = b.state("pc_cd19", "cells/uL-eq", "CD19+ plasma cells (BCMA+), renewed from plasmablasts", pc19_0)
    pca = b.state("pc_auto", "cells/uL-eq", "autoreactive long-lived plasma cells", pca0)

    b.flow(None, "b_pre", s_pre * prog, "supply from CD19- progenitors (asymmetric division)")
    b.flow("b_pre", "b_naive_blood", k_mat * pre, "maturation and release to blood")
    b.flow("b_naive_blood", "b_naive_tissue", k_bt_n * nb, "homing to lymphoid tissue")
    b.flow("b_naive_tissue", "b_naive_blood", k_tb * nt, "recirculation to blood")
    b.flow("b_mem_blood", "b_mem_tissue", k_bt_m * mb, "homing to lymphoid tissue")
    b.flow("b_mem_tissue", "b_mem_blood", k_tb * mt, "recirculation to blood")
    for naive in ("b_naive_blood", "b_naive_tissue"):
        s = sp.Symbol(naive)
        b.flow(naive, None, d_n * s, "naive death")
        b.flow(naive, "b_mem_tissue", a_n * s, "activation to memory")
        b.flow(naive, "pb", k_npb * s, "differentiation to plasmablasts (primary, extrafollicular response)")
    # The immune "reset": once autoreactive clones are nearly eliminated (below ``reset_threshold`` of
    # baseline, as after CD19 CAR-T), recruitment of new autoreactive clones is suppressed, and recovers with
    # half-life ``reset_halflife`` (the durability of the reset, which nobody has measured in MS).
    rel = b.observe("autoreactive_level", au / (a0 + p("auto_floor")), "1",
                    "autoreactive memory B cells relative to baseline")
    eps = p("reset_threshold")
    elim = eps**4 / (eps**4 + rel**4)
    k_on, k_off = p("reset_k_on"), sp.log(2) / p("reset_halflife")
    elim0 = eps**4 / (eps**4 + (a0 / (a0 + p("auto_floor")))**4)
    r0 = b.derive("reset0", k_on * elim0 / (k_on * elim0 + k_off))
    reset = b.state("auto_reset", "1", "suppression of autoreactive-clone recruitment after their elimination", r0)
    b.flow(None, "auto_reset", k_on * elim * (1 - reset), "onset when autoreactive clones are eliminated")
    b.flow("auto_reset", None, k_off * reset, "waning (durability of the reset)")
    b.flow(None, "b_auto", recruit * a_n * nt * (1 - reset) / (1 - r0),
           "recruitment of new autoreactive clones from activated naive cells (negligible drain on naive cells)")
    for mem in ("b_mem_blood", "b_mem_tissue"):
        s = sp.Symbol(mem)
        b.flow(None, mem, rho_m * s, "memory self-renewal")
        b.flow(mem, None, d_m * s, "memory death")
        b.flow(mem, "pb", k_mpb * s, "differentiation to plasmablasts")
    b.flow(None, "b_auto", rho_a * au, "autoreactive self-renewal (chronic autoantigen)")
    b.flow("b_auto", None, (tm - k_mpb) * au, "autoreactive death")
    b.flow("b_auto", "pb_auto", k_mpb * au, "differentiation to autoreactive plasmablasts")
    b.flow("pb", None, d_pb * pb, "plasmablast death")
    b.flow("pb_auto", None, d_pb * pba, "plasmablast death")
    # The long-lived (CD19-) plasma cells live in survival niches of the bone marrow, which are limited
    # (Radbruch A et al. Nat Rev Immunol 2006;6:741): at steady state the niches are full, almost every new
    # plasmablast dies for want of one, and the pool turns over once in decades. Emptied niches (an anti-BCMA
    # CAR-T kills every plasma cell) take new plasmablasts in proportion to the niches free: entry rises
    # linearly as the pool falls, to ``pc_niche_vacancy_gain`` times its steady-state rate when every niche is
    # free, the rate at which a share ``pc_settle_share_empty`` of plasmablasts settles instead of dying. The
    # CD19+ plasma cells and the autoreactive ones (short-lived in the diseases the model knows) are the
    # dynamic pools, renewed at their steady-state rates (Mei HE et al. Blood 2015;125:1739).
    settle = p("pc_settle_share_empty")
    gain = b.derive("pc_niche_vacancy_gain", d_pb * settle / ((1 - settle) * (1 - f19) * k_pbpc))
    vacancy = b.observe("pc_niche_vacancy", gain - (gain - 1) * pc / pc0, "1",
                        "long-lived plasma-cell niche entry relative to steady state (rises as the niches empty)")
    b.flow("pb", "pc", (1 - f19) * k_pbpc * vacancy * pb, "long-lived plasma-cell niche entry (CD19-)")
    b.flow("pb", "pc_cd19", f19 * k_pbpc * pb, "plasma-cell entry (CD19+)")
    b.flow("pb_auto", "pc_auto", k_pbpc * pba, "plasma-cell entry")
    b.flow("pc", None, d_pc * pc, "plasma-cell death")
    b.flow("pc_cd19", None, d_pc19 * pc19, "plasma-cell death")
    b.flow("pc_auto", None, p("pc_auto_death") * pca, "plasma-cell death")

    # therapy: CAR-T killing by target antigen, and lymphodepletion of dividing/naive cells
    kill19, killb, ld = sp.Symbol("kill_cd19"), sp.Symbol("kill_bcma"), sp.Symbol("ld_kill")
    cd19_pos = ("b_pre", "b_naive_blood", "b_naive_tissue", "b_mem_blood", "b_mem_tissue", "b_auto", "pb", "pb_auto",
                "pc_cd19")
    bcma_pos = ("pb", "pb_auto", "pc", "pc_cd19", "pc_auto")
    dividing = cd19_pos[:-1]    # lymphodepleting chemotherapy kills dividing and naive cells, not plasma cells
    flux = sp.Integer(0)
    for name in dict.fromkeys(cd19_pos + bcma_pos):
        s = sp.Symbol(name)
        rate = (kill19 if name in cd19_pos else 0) + (killb if name in bcma_pos else 0)
        b.flow(name, None, rate * s, "killed by CAR-T cells")
        flux += rate * s
    for name in dividing:
        b.flow(name, None, ld * sp.Symbol(name), "killed by lymphodepletion")
    b.observe("kill_flux_b", flux, "cells/uL-eq/day", "B-lineage cells killed by CAR-T")

    b.observe("cd19_load", sum((sp.Symbol(n) for n in cd19_pos), sp.Integer(0)) + sp.Symbol("malignant"),
              "cells/uL-eq", "CD19+ cells in the body")
    b.observe("bcma_load", pb + pba + pc + pc19 + pca, "cells/uL-eq", "BCMA+ cells in the body")
    b.observe("b_blood_per_uL", nb + mb, "cells/uL", "CD19+ B cells in blood")
    b.observe("b_tissue", nt + mt + au, "cells/uL-eq", "B cells in lymphoid tissue")
    b.observe("naive_fraction_blood", nb / (nb + mb + 1e-300), "1", "naive share of blood B cells")
    b.observe("plasma_cells", pc + pc19 + pca, "cells/uL-eq", "plasma cells (CD19- and CD19+)")

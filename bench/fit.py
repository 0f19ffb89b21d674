"""Population-fit benchmark: time and accuracy of `cartsim fit` (FOCE-I) on simulated cohorts with known
parameters (only the estimated parameters vary between patients; log-normal residual error 0.15; values below
each assay's limit flagged BLQ).

    .venv/bin/python bench/fit.py                 # ocrelizumab PK with 15 and 300 patients, MB-CART19 with 15
    .venv/bin/python bench/fit.py --cases ocr15   # one case

Prints a table (estimate, truth, 95% interval, covered) and writes bench/results/fit.json atomically.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from cartsim.exporters.nonmem import check_dataset
from cartsim.fit.cohort import cohort, true_values
from cartsim.fit.run import fit
from cartsim.model import build_model
from cartsim.outputs.files import write_text_atomic
from cartsim.scenario import Scenario

CASES = {
    "ocr15": ("ocrelizumab", "ms", ["mab_v1", "mab_cl_inf"], [5], 15),
    "ocr300": ("ocrelizumab", "ms", ["mab_v1", "mab_cl_inf"], [5], 300),
    "cart15": ("mb-cart19", "sle", ["car_r_exp", "car_k_kill"], [1, 2], 15),
}
SD = 0.15


def run_case(name: str, seed: int) -> dict:
    therapy, disease, names, dvids, n = CASES[name]
    model = build_model()
    scenario = Scenario.make(therapy, disease, 365)
    data = check_dataset(cohort(model, scenario, n, seed, names, SD))
    truth = true_values(model, scenario, names)
    began = time.perf_counter()
    r = fit(data, therapy, names, disease, dvids)
    seconds = time.perf_counter() - began
    true = [truth[p][0] for p in names] + [truth[p][1] for p in names] + [SD] * len(dvids)
    rows = []
    for (_, row), t in zip(r.parameters.iterrows(), true):
        rows.append({"role": row.role, "parameter": row.parameter, "estimate": row.estimate, "truth": t,
                     "ci_low": row.ci_low, "ci_high": row.ci_high,
                     "covered": bool(row.ci_low <= t <= row.ci_high)})
    return {"case": name, "therapy": therapy, "patients": n, "observations": int(r.problem.data.dv.size),
            "seconds": round(seconds, 1), "ofv": r.estimate.ofv, "converged": r.estimate.success,
            "covariance": r.estimate.covariance_message, "objective_evaluations": r.estimate.evaluations,
            "parameters": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default=",".join(CASES), help="comma-separated: " + ", ".join(CASES))
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "fit.json")
    args = ap.parse_args()
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    bad = [c for c in cases if c not in CASES]
    if bad:
        ap.error(f"--cases: unknown case {bad[0]!r} (allowed: {', '.join(CASES)})")
    results = []
    for c in cases:
        res = run_case(c, args.seed)
        results.append(res)
        print(f"{c}: {res['patients']} patients, {res['observations']} observations, {res['seconds']} s, "
              f"converged {res['converged']}, covariance {res['covariance']}")
        for p in res["parameters"]:
            print(f"  {p['role']:<6}{p['parameter']:<28}{p['estimate']:>10.4g}  truth {p['truth']:<8.4g}"
                  f"  95% {p['ci_low']:.4g}-{p['ci_high']:.4g}  {'covered' if p['covered'] else 'MISSED'}")
    doc = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "platform": platform.platform()},
           "seed": args.seed, "residual_sd": SD, "cases": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out, json.dumps(doc, indent=2, default=float) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()

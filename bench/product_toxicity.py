"""CRS after each CAR-T product as published (bench/product_kinetics.yaml) against cartsim's prediction.

For every row of the table that names a model disease, the product of the same name is run in that disease
(with the trial's dose and lymphodepletion where they differ) over the virtual population of ``cartsim
validate`` (n=200, seed 20221) for 60 days, and the shares of patients with CRS of any grade and of grade 3 or
more are printed beside the published ones with their 95% Clopper-Pearson intervals where the number of patients is known. Grading
scales differ (Penn, Lee, ASTCT; the model grades ASTCT), which the scale column says. Rows whose product or
setting the model lacks (myeloma, mantle cell lymphoma) are listed as not run.

    python bench/product_toxicity.py [--out bench/results/product_toxicity.json]

Nothing in the package reads its output; the residuals are what a joint calibration of CRS across products
starts from.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from product_table import count, rows
from scipy.stats import binomtest

from cartsim import endpoints
from cartsim.model import build_model
from cartsim.outputs.files import write_text_atomic
from cartsim.population import sample
from cartsim.scenario import Scenario
from cartsim.validate import POP_N, SEED

DAYS = 60.0


def observed_crs(row: dict) -> tuple[float | None, float | None, str, tuple[int, int] | None]:
    """(any grade, grade >= 3, scale, (events, patients) for any grade) from a table row."""
    any_, g3 = row.get("crs_any", {}), row.get("crs_grade3plus", {})
    return (any_.get("value"), g3.get("value"), any_.get("scale", "not stated"),
            count(any_["n"]) if "n" in any_ else None)


def predicted_crs(product: str, disease: str, dose: str | None,
                  lymphodepletion: str | None = None) -> tuple[float, float]:
    model = build_model()
    sc = Scenario.make(product, disease, DAYS, dose=dose, lymphodepletion=lymphodepletion)
    pop = sample(model, sc.disease, POP_N, SEED, course=sc.course)
    ep = endpoints.compute(sc.run(pop, columns=endpoints.COLUMNS), model.table, population=pop)
    g = ep.crs_max_grade.dropna().astype(int)
    return float((g >= 1).mean()), float((g >= 3).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "product_toxicity.json")
    args = ap.parse_args()
    out = []
    print(f"{'product':<14}{'trial':<28}{'disease':<8}{'CRS any: model':>16}{'observed (95% CI)':>24}"
          f"{'CRS >=3: model':>16}{'observed':>10}  scale")
    for row in rows():
        any_obs, g3_obs, scale, counts = observed_crs(row)
        trial = row["trial"].split(" (")[0][:27]
        where = row.get("model")
        if where is None or any_obs is None:
            why = "not run: no CRS in the row" if any_obs is None else "not run: product or setting not in the model"
            print(f"{row['product'][:13]:<14}{trial:<28}{'-':<8}{why:>40}")
            out.append({"product": row["product"], "trial": row["trial"], "run": False})
            continue
        any_pred, g3_pred = predicted_crs(row["product"], where["disease"], where.get("dose"),
                                          where.get("lymphodepletion"))
        ci = binomtest(*counts).proportion_ci(method="exact") if counts else None
        inside = None if ci is None else bool(ci.low <= any_pred <= ci.high)
        obs_text = "-" if any_obs is None else f"{any_obs:.2f}" + (f" ({ci.low:.2f}-{ci.high:.2f})" if ci else "")
        g3_text = "-" if g3_obs is None else f"{g3_obs:.2f}"
        print(f"{row['product'][:13]:<14}{trial:<28}{where['disease']:<8}{any_pred:>16.2f}{obs_text:>24}"
              f"{g3_pred:>16.2f}{g3_text:>10}  {scale}" + ("" if inside is None else
                                                            ("  in interval" if inside else "  OUTSIDE")))
        out.append({"product": row["product"], "trial": row["trial"], "run": True, "disease": where["disease"],
                    "dose": where.get("dose"), "lymphodepletion": where.get("lymphodepletion"),
                    "crs_any_model": any_pred, "crs_any_observed": any_obs,
                    "crs_any_ci": None if ci is None else [ci.low, ci.high], "crs_any_inside": inside,
                    "crs_grade3plus_model": g3_pred, "crs_grade3plus_observed": g3_obs, "scale": scale})
    doc = {"population": {"n": POP_N, "seed": SEED, "days": DAYS}, "rows": out}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out, json.dumps(doc, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

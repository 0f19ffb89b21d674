"""Provenance of the parameter table: every assumed and calibrated value has an uncertainty range that holds it,
every literature and calibrated value a reference, no source is a recollection ('memory'), the loader refuses a
bad range or a missing reference naming the parameter and the field, and `cartsim parameters --json` carries
them."""

import json
import math
import re
import tomllib
from importlib import resources

import numpy as np
import pytest
from scipy import stats
from typer.testing import CliRunner

from cartsim.cli import app
from cartsim.model.parameters import DISTRIBUTIONS, Uncertainty, _uncertainty, load_table, parse_table
from cartsim.trial.sensitivity import ranges

from bench_scripts import bench_module


def test_every_assumed_and_calibrated_value_has_a_range_around_it():
    table = load_table()
    uncertain = [r for r in table if r.kind in ("assumed", "calibrated")]
    assert len(uncertain) == 124
    ranged = [r for r in uncertain if r.uncertainty is not None]
    assert len(ranged) == 101
    for r in ranged:
        u = r.uncertainty
        on_bound = u.distribution == "uniform" and r.bounds is not None and r.value == r.bounds[0] == u.low
        assert u.distribution in DISTRIBUTIONS and (u.low < r.value < u.high or on_bound) and u.reason.strip(), r.name
        if r.bounds is not None:                       # fractions stay fractions in every draw
            assert u.bounded and r.bounds[0] <= u.low and u.high <= r.bounds[1], r.name
    # the rest are placeholders, switches and numerical guards, each saying so; none is calibrated
    bare = {r.name for r in uncertain if r.uncertainty is None}
    assert all(table[n].no_uncertainty.strip() and table[n].kind == "assumed" for n in bare)
    assert {"auto_share", "car_presence_eps", "car_costim_cd28", "ms_relapse_rate", "target_cd19",
            "nmosd_attack_rate", "mg_adl0", "car_mrna", "autoantibody_floor", "car_memory_share",
            "car_transduction"} <= bare
    assert len(bare) == 23
    assert not [r.name for r in table if r.kind in ("literature", "derived") and r.uncertainty is not None]


def test_every_ranged_value_the_model_uses_is_a_model_parameter():
    """Regression: the CD28 expansion and memory factors and the CD4+ killing weight had uncertainty ranges but
    acted through values a product computed in Python, so no uncertainty or sensitivity run could vary them;
    the model derives what a product changes from them now."""
    from cartsim.model import build_model

    model = build_model()
    assert {"cd4_kill_weight", "cd28_expansion_factor", "cd28_memory_factor"} <= set(model.parameters)
    derived = dict(model.derived)
    assert {"car_potency", "costim_expansion", "costim_memory", "car_expression_loss"} <= set(derived)


def test_a_calibrated_value_says_where_its_between_patient_sd_comes_from():
    """A calibration fits typical values; the spread around them is fitted too only where a script says so. Each
    calibrated parameter with an omega states the omega's own provenance (iiv_kind, iiv_source) or its source
    names the omega's fit."""
    table = load_table()
    for r in table:
        if r.kind == "calibrated" and r.iiv_omega > 0:
            assert r.iiv_kind or "iiv_omega" in r.source, r.name
    assert table["car_r_exp"].omega_kind == "calibrated" and table["car_k_kill"].omega_kind == "assumed"


def test_calibrated_ranges_are_the_calibration_grids():
    table = load_table()
    calibrate = bench_module("calibrate")              # bench/calibrate.py: the range is the grid of each fit
    grid = {**calibrate.GRID, **calibrate.EARLIER_GRID}  # (the four held values: the earlier grid's)
    for name in ("car_k_stim", "car_k_kill", "car_k_exh", "cd28_exhaustion_factor"):
        u = table[name].uncertainty
        assert (u.distribution, u.low, u.high) == ("loguniform", min(grid[name]), max(grid[name])), name
    igg = table["pc_death"].uncertainty              # bench/calibrate_igg.py: half-lives 20-80 years
    assert math.log(2) / igg.high / 365.25 == pytest.approx(20, rel=1e-3)
    assert math.log(2) / igg.low / 365.25 == pytest.approx(80, rel=1e-3)
    assert table["mab_ec50"].uncertainty.low == 0.0005 and table["mab_ec50"].uncertainty.high == 0.0057


def test_fractions_are_bounded_and_thresholds_keep_their_order():
    table = load_table()
    for name in ("igg_pc_share", "pc_cd19_share", "ms_gd_imax", "crs_toci_resistant", "ms_raw_probability"):
        assert table[name].bounds == (0.0, 1.0), name
    for prefix in ("crs_il6_grade", "icans_grade"):
        ranges_ = [table[f"{prefix}{g}"].uncertainty for g in (1, 2, 3, 4)]
        assert all(a.bounded and a.high < b.low for a, b in zip(ranges_, ranges_[1:])), prefix


@pytest.mark.parametrize("distribution, reference", [
    ("uniform", stats.uniform(loc=2.0, scale=6.0)),
    ("loguniform", stats.loguniform(2.0, 8.0)),
    ("normal", stats.norm(loc=5.0, scale=3.0 / 1.959963984540054)),
    ("lognormal", stats.lognorm(s=math.log(4.0) / (2 * 1.959963984540054), scale=4.0)),
])
def test_quantiles_map_to_values_by_the_distribution(distribution, reference):
    u = Uncertainty(distribution, 2.0, 8.0, "test")
    q = np.array([0.025, 0.3, 0.5, 0.975])
    assert u.ppf(q) == pytest.approx(reference.ppf(q))
    if not u.bounded:                                 # low/high are the 2.5th and 97.5th percentiles
        assert u.ppf([0.025, 0.975]) == pytest.approx([2.0, 8.0])
    else:                                             # ... or the bounds
        assert u.ppf([0.0, 1.0]) == pytest.approx([2.0, 8.0])


def test_sampling_uses_the_tables_range_not_the_default():
    r = ranges(load_table(), ("reset_halflife", "pb_death", "auto_floor"))
    assert not r["reset_halflife"].default and r["reset_halflife"].distribution == "loguniform"
    assert (r["reset_halflife"].low, r["reset_halflife"].high) == (182.6, 7305.0)
    assert not r["pb_death"].default and (r["pb_death"].low, r["pb_death"].high) == (0.1, 0.4)
    assert r["auto_floor"].default          # a numerical guard: no table range, the stated default


def _entry(**fields):
    return {"value": 1.5, "unit": "1/day", "component": "test", "kind": "assumed", "source": "a test value (assumed)",
            "description": "test"} | fields


@pytest.mark.parametrize("fields, message", [
    ({"uncertainty": {"distribution": "beta", "low": 1.0, "high": 2.0, "reason": "x"}},
     "uncertainty.distribution must be one of"),
    ({"uncertainty": {"distribution": "lognormal", "low": 3.0, "high": 2.0, "reason": "x"}}, "must be below"),
    ({"uncertainty": {"distribution": "loguniform", "low": 0.0, "high": 2.0, "reason": "x"}}, "must be > 0"),
    ({"uncertainty": {"distribution": "uniform", "low": 2.0, "high": 3.0, "reason": "x"}},
     "outside its uncertainty range"),
    ({"uncertainty": {"distribution": "uniform", "low": 1.5, "high": 3.0, "reason": "x"}},
     "outside its uncertainty range"),
    ({"uncertainty": {"distribution": "uniform", "low": 1.0, "high": 3.0, "reason": " "}}, "reason is empty"),
    ({"value": 0.5, "unit": "1", "bounds": [0, 1],
      "uncertainty": {"distribution": "uniform", "low": 0.2, "high": 1.2, "reason": "x"}}, "leaves the parameter's bounds"),
    ({"value": 0.5, "unit": "1", "bounds": [0, 1],
      "uncertainty": {"distribution": "lognormal", "low": 0.25, "high": 0.9, "reason": "x"}}, "must be uniform or loguniform"),
    ({"value": 1.5, "bounds": [0, 1]}, "outside its bounds"),
    ({}, "needs uncertainty = "),
    ({"kind": "calibrated", "no_uncertainty": "why"}, "needs an uncertainty range"),
    ({"no_uncertainty": "why", "uncertainty": {"distribution": "uniform", "low": 1.0, "high": 2.0, "reason": "x"}},
     "both uncertainty and no_uncertainty"),
    ({"uncertainty": {"distribution": "uniform", "low": 1, "high": 2, "reason": "x", "mode": 1}},
     "uncertainty has unknown keys"),
    ({"uncertainty": {"distribution": "uniform", "low": "one", "high": 2}}, "uncertainty needs"),
    ({"uncertainty_range": [1, 2]}, "unknown field"),
    ({"no_uncertainty": "why", "iiv_omega": 0.2, "iiv_kind": "fitted", "iiv_source": "x"}, "iiv_kind must be one of"),
    ({"no_uncertainty": "why", "iiv_kind": "calibrated", "iiv_source": "x"}, "this parameter has none"),
    ({"no_uncertainty": "why", "iiv_omega": 0.2, "iiv_kind": "calibrated"}, "iiv_kind needs iiv_source"),
    ({"kind": "literature"}, "a literature parameter needs a reference"),
    ({"kind": "calibrated", "uncertainty": {"distribution": "uniform", "low": 1.0, "high": 2.0, "reason": "grid"}},
     "a calibrated parameter needs a reference .*calibration target"),
    ({"kind": "literature", "reference": ""}, "reference must be a non-empty citation"),
    ({"kind": "literature", "reference": ["Smith J. Blood 2000;1:1", 3]}, "reference must be a non-empty citation"),
    ({"source": "a guess", "uncertainty": {"distribution": "uniform", "low": 1.0, "high": 2.0, "reason": "x"}},
     "must say in its source that, and why, it is assumed"),
])
def test_a_bad_range_is_refused_with_the_parameter_named(fields, message):
    with pytest.raises(ValueError, match=f"parameter 'k_test'.*{message}"):
        parse_table({"k_ok": _entry(no_uncertainty="a placeholder"), "k_test": _entry(**fields)})


def test_a_value_fitted_onto_its_lower_bound_starts_a_uniform_range_there():
    """A calibration may put a rate on 0, its physical bound (il6_per_kill): the range then starts at 0; the same
    range is refused for a value that is not a bound, and for a distribution that cannot start at 0."""
    fitted = {"value": 0.0, "bounds": [0.0, 1.0],
              "uncertainty": {"distribution": "uniform", "low": 0.0, "high": 0.5, "reason": "grid"}}
    assert parse_table({"k_test": _entry(**fitted)})["k_test"].uncertainty.low == 0.0
    with pytest.raises(ValueError, match="outside its uncertainty range"):
        parse_table({"k_test": _entry(**(fitted | {"bounds": [-1.0, 1.0]}))})
    with pytest.raises(ValueError, match="must be > 0"):
        parse_table({"k_test": _entry(**(fitted | {"uncertainty": fitted["uncertainty"] | {"distribution": "loguniform"}}))})


def test_a_good_small_table_loads():
    t = parse_table({"k_test": _entry(uncertainty={"distribution": "lognormal", "low": 0.75, "high": 3.0,
                                                   "reason": "2-fold"})})
    assert t["k_test"].uncertainty == Uncertainty("lognormal", 0.75, 3.0, "2-fold")
    assert t["k_test"].uncertainty.ppf(0.5) == pytest.approx(1.5)
    assert _uncertainty("k_test", None) is None


def test_parameters_json_carries_the_ranges():
    r = CliRunner().invoke(app, ["parameters", "--json"])
    assert r.exit_code == 0
    by_name = {row["name"]: row for row in json.loads(r.output)}
    assert by_name["car_k_stim"]["uncertainty"] == {
        "distribution": "loguniform", "low": 31.25, "high": 125.0,
        "reason": load_table()["car_k_stim"].uncertainty.reason}
    # a between-patient SD with a provenance of its own carries it; others take the value's
    assert by_name["car_r_exp"]["kind"] == "literature" and by_name["car_r_exp"]["iiv_kind"] == "calibrated"
    assert "calibrate_spread.py" in by_name["car_r_exp"]["iiv_source"]
    assert by_name["car_alpha"]["iiv_kind"] == "literature" and by_name["car_alpha"]["iiv_source"] is None
    assert by_name["k_el_flu"]["iiv_kind"] is None
    assert by_name["k_el_flu"]["uncertainty"] is None
    assert by_name["igg_pc_share"]["bounds"] == [0.0, 1.0]
    assert by_name["auto_floor"]["no_uncertainty"].startswith("a numerical guard")
    assert len([row for row in by_name if "[" not in row]) == len(load_table())


# biological uses of the word: memory B and T cells, the memory pool and its balance, parameter names
BIOLOGICAL = re.compile(r"\w*_memory\w*|\w*memory_\w*|memory[ -](B|T|CAR-T|phenotype|pool|count|self-renewal|balance)",
                        re.IGNORECASE)
DATA = ("parameters.toml", "diseases.toml", "products.toml", "lymphodepletion.toml", "immunomodulators.toml",
        "antibodies.toml")


def _sources(node, path=""):
    """Every provenance text (source, manufacturing_source, reason) in a data file, with where it is."""
    if isinstance(node, dict):
        for k, v in node.items():
            if isinstance(v, str) and ("source" in k or k == "reason"):
                yield f"{path}.{k}", v
            else:
                yield from _sources(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _sources(v, f"{path}[{i}]")


def test_no_source_is_quoted_from_memory():
    """'memory' may name memory B or T cells, never the provenance of a number (sources and comments)."""
    texts = []
    for file in DATA:
        text = resources.files("cartsim.data").joinpath(file).read_text()
        texts += [(f"{file}{where}", t) for where, t in _sources(tomllib.loads(text))]
        texts += [(f"{file} comment", line) for line in text.splitlines() if line.lstrip().startswith("#")]
    assert len(texts) > 300
    assert [(where, t) for where, t in texts if "memory" in BIOLOGICAL.sub("", t).lower()] == []
    assert BIOLOGICAL.sub("", "Odendahl M et al. Blood 2005 (memory)") != "Odendahl M et al. Blood 2005 ()"


def test_every_literature_and_calibrated_value_cites_a_reference():
    table = load_table()
    cited = [r for r in table if r.kind in ("literature", "calibrated")]
    assert len(cited) == 84 and all(r.reference and all(c.strip() for c in r.reference) for r in cited)
    assert not [r.name for r in table if r.kind == "derived" and r.reference]
    # calibrated values cite their calibration target's paper, as the targets do
    assert table["ms_relapse_imax"].reference == ("Hauser SL et al. N Engl J Med 2017;376:221-234",)
    assert table["pc_cd19_share"].reference == ("Hill JA et al. Blood Adv 2019;3:3590",)
    assert "Mackensen A et al. Nat Med 2022;28:2124-2132" in table["car_k_stim"].reference
    # an assumed value that cites nothing says that it is assumed (or points to another's provenance)
    for r in table:
        if r.kind == "assumed" and not r.reference and not r.no_uncertainty:
            assert "assum" in r.source.lower() or r.source.startswith("as "), r.name


def test_checked_values_match_their_sources():
    """Values re-read in their sources: the numbers the sources give."""
    table = load_table()
    # FcRn-deficient siblings: 'IgG survival was short, with a 5-fold increase in catabolic rate' (OMIM #241600)
    assert table.value("fcrn_igg_catabolism_fold") == 5
    # cyclophosphamide 7.1 h on the first conditioning day (Cancer Chemother Pharmacol 1987;20:248)
    assert math.log(2) / table.value("k_el_cy") * 24 == pytest.approx(7.1, rel=0.03)
    # 2-fluoro-ara-A half-life about 20 h
    assert math.log(2) / table.value("k_el_flu") * 24 == pytest.approx(20, rel=0.01)
    # PRISMS: 1.73 vs 2.56 relapses per patient over 2 years with 44 ug three times weekly
    assert 1 - table.value("ifn_relapse_effect") == pytest.approx(1.73 / 2.56, abs=0.01)
    # rituximab CSF/serum about 0.1% (Rubenstein 2003); tocilizumab 8 mg/kg, at most 800 mg
    assert table.value("mab_csf_ratio") == 0.001
    assert (table.value("toci_mg_per_kg"), table.value("toci_max_mg")) == (8, 800)
    # Nadler: 69 mL/kg for a 70 kg, 1.75 m man, about the table's 70 mL/kg
    nadler = (0.3669 * 1.75 ** 3 + 0.03219 * 70 + 0.6041) / 70 * 1e6
    assert nadler == pytest.approx(table.value("blood_volume_per_kg"), rel=0.02)
    # ocrelizumab 145.8 kDa; adult IgG inside the 6.1-16.2 g/L reference interval
    assert table.value("mab_mw_kda") == pytest.approx(145.8, abs=0.5)
    assert 6.1 < table.value("igg0") < 16.2


def test_disease_overrides_may_cite_references():
    from cartsim.disease import diseases

    prov = diseases()["ms"].value_provenance("spms")
    assert prov["ms_relapse_rate"]["reference"].startswith("Kappos L et al. Lancet 2018;391:1263")
    rows = json.loads(CliRunner().invoke(app, ["parameters", "--json"]).output)
    row = next(r for r in rows if r["name"] == "ms_relapse_rate [ms spms]")
    assert row["reference"] == [prov["ms_relapse_rate"]["reference"]] and row["uncertainty"] is None


def test_parameters_json_carries_references():
    rows = {r["name"]: r for r in json.loads(CliRunner().invoke(app, ["parameters", "--json"]).output)}
    assert rows["mab_csf_ratio"]["reference"] == ["Rubenstein JL et al. Blood 2003;101:466"]
    assert all(isinstance(r["reference"], list) for r in rows.values())
    assert sum(bool(r["reference"]) for n, r in rows.items() if "[" not in n) == 87


def test_values_a_disease_sets_carry_their_own_ranges():
    """An assumed or calibrated value that a disease, course or antibody sets has a range around it; the loader
    refuses one without (naming the owner and the parameter)."""
    from cartsim.disease import diseases
    from cartsim.model.parameters import checked_overrides

    for d in diseases().values():
        for c in [None, *d.courses]:
            for name, prov in d.value_provenance(c).items():
                value = d.values(c)[name]
                if prov["kind"] in ("assumed", "calibrated") and value != 0:
                    u = prov["uncertainty"]
                    assert u["low"] < value < u["high"] and u["reason"], (d.name, c, name)
    rows = {r["name"]: r for r in json.loads(CliRunner().invoke(app, ["parameters", "--json"]).output)}
    assert rows["ms_pira_rate [ms ppms]"]["uncertainty"]["distribution"] == "lognormal"
    with pytest.raises(ValueError, match="disease 'x': override 'auto_share' is assumed and needs uncertainty"):
        checked_overrides("disease 'x'", {"auto_share": 0.1}, {"auto_share": {"kind": "assumed", "source": "s"}},
                          load_table())
    with pytest.raises(ValueError, match="override 'auto_share' uncertainty must be one of"):
        checked_overrides("disease 'x'", {"auto_share": 0.5}, {"auto_share": {
            "kind": "assumed", "source": "s",
            "uncertainty": {"distribution": "uniform", "low": 0.05, "high": 0.2, "reason": "r"}}}, load_table())

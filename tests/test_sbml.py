"""SBML export: valid SBML L3V2, and libRoadRunner reproduces the engine's trajectories."""

from dataclasses import replace
from xml.etree import ElementTree

import libsbml
import numpy as np
import pytest
import roadrunner
import sympy as sp
from typer.testing import CliRunner

from cartsim.cli import app
from cartsim.engine import DoseRecord, Doses, solve
from cartsim.exporters import ExportError
from cartsim.exporters.sbml import export_inputs, parse_unit, sbml_document, to_sbml
from cartsim.model import ModelBuilder, ParameterRecord, ParameterTable, build_model
from cartsim.population import typical
from cartsim.scenario import Scenario, trigger as engine_trigger

RTOL, ATOL = 1e-10, 1e-14
# Relative error |a - b| / max(|b|, FLOOR). With ATOL = 1e-14 both solvers resolve a state of size y to
# about ATOL / y per step, so below ~1e-6 the comparison would measure the solvers' absolute tolerances
# rather than the export. 1e-6 in the states' units (cells/uL, mg/m2, pg/mL, g/L, mg, fractions) is far
# below anything measurable: one cell per litre of blood.
FLOOR = 1e-6
MATCH = 1e-5


@pytest.fixture(scope="module")
def model():
    return build_model()


def _roadrunner(text: str, times: np.ndarray, columns: tuple[str, ...]) -> tuple[roadrunner.RoadRunner, np.ndarray]:
    rr = roadrunner.RoadRunner(text)
    integrator = rr.getIntegrator()
    integrator.relative_tolerance = RTOL
    integrator.absolute_tolerance = ATOL
    integrator.setValue("maximum_num_steps", 100_000)
    rr.timeCourseSelections = ["time", *columns]
    return rr, np.asarray(rr.simulate(times=list(times)))[:, 1:]


def _relative_error(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a - b) / np.maximum(np.abs(b), FLOOR)


def _columns(model) -> tuple[str, ...]:
    return (*model.state_names, *model.observable_names)


def _compare_scenario(model, scenario: Scenario, population) -> tuple[np.ndarray, float, object]:
    days = np.arange(scenario.start, scenario.days + 1)
    sol = scenario.run(population, columns=_columns(model), times=days, model=model, rtol=RTOL, atol=ATOL)
    assert not sol.failures
    rr, values = _roadrunner(to_sbml(model, scenario, population), days - scenario.start, _columns(model))
    return _relative_error(values, sol.values[0]), rr["tocilizumab_rescue_fires"], sol


def _messages(doc: libsbml.SBMLDocument, severity: int) -> list[libsbml.SBMLError]:
    log = doc.getErrorLog()
    return [log.getError(i) for i in range(log.getNumErrors()) if log.getError(i).getSeverity() == severity]


@pytest.mark.parametrize("therapy, disease", [("untreated", "healthy"), ("mb-cart19", "sle")])
def test_export_is_valid_sbml(model, therapy, disease):
    doc = libsbml.readSBMLFromString(to_sbml(model, Scenario.make(therapy, disease, 120)))
    assert (doc.getLevel(), doc.getVersion()) == (3, 2)
    doc.checkConsistency()
    assert [e.getMessage() for e in _messages(doc, libsbml.LIBSBML_SEV_ERROR)] == []
    assert [e.getMessage() for e in _messages(doc, libsbml.LIBSBML_SEV_FATAL)] == []
    other = [e.getMessage() for e in _messages(doc, libsbml.LIBSBML_SEV_WARNING)
             if e.getCategory() != libsbml.LIBSBML_CAT_UNITS_CONSISTENCY]
    assert other == []
    m = doc.getModel()
    assert all(m.getParameter(s.name).isSetUnits() for s in model.states)
    assert m.getRateRule("car_eff") is not None and m.getAssignmentRule("crs_grade") is not None
    assert "piecewise" in libsbml.formulaToL3String(m.getAssignmentRule("crs_grade").getMath())


def test_provenance_and_patient_values(model):
    scenario = Scenario.make("mb-cart19", "sle", 120)
    m = libsbml.readSBMLFromString(to_sbml(model, scenario)).getModel()
    population, _ = scenario.patient_inputs(model, typical(model, scenario.disease))
    for name in ("k_el_flu", "auto_share", "car_cd4_cd8_ratio"):
        assert m.getParameter(name).getValue() == pytest.approx(population.column(name)[0], rel=1e-14)
    record = model.table["k_el_flu"]
    annotation = m.getParameter("k_el_flu").getAnnotationString()
    attributes = ElementTree.fromstring(annotation)[0].attrib      # the source as written, quotes unescaped
    assert attributes["source"] == record.source and attributes["kind"] == record.kind
    assert 'set_by="disease sle"' in m.getParameter("auto_share").getAnnotationString()
    derived = model.derived[0][0]
    assert m.getAssignmentRule(derived) is not None
    assert "car_cd4_cd8_ratio" in libsbml.formulaToL3String(m.getAssignmentRule("car_potency").getMath())
    assert m.getParameter("t_start").getValue() == scenario.start == -5


def test_dose_events_at_shifted_times(model):
    scenario = Scenario.make("mb-cart19", "sle", 120)
    m = libsbml.readSBMLFromString(to_sbml(model, scenario)).getModel()
    triggers = {e.getId(): libsbml.formulaToL3String(e.getTrigger().getMath()) for e in m.getListOfEvents()}
    assert [triggers[f"dose_event_{k}"] for k in range(1, 5)] == [f"time >= {d} day" for d in (0, 1, 2, 5)]
    day_minus_3 = {ea.getVariable(): sp.sympify(libsbml.formulaToL3String(ea.getMath()))
                   for ea in m.getEvent("dose_event_3").getListOfEventAssignments()}
    assert day_minus_3 == {"flu": sp.sympify("flu + dose_3"), "cy": sp.sympify("cy + dose_4")}
    assert "il6_signal >= crs_il6_grade2" in triggers["tocilizumab_rescue"]


@pytest.mark.parametrize("therapy, disease, days", [("untreated", "healthy", 60), ("mb-cart19", "sle", 120),
                                                    ("ocrelizumab", "ms", 200), ("ofatumumab", "ms", 60),
                                                    ("inebilizumab", "nmosd", 120), ("descartes-08", "mg", 90),
                                                    ("efgartigimod", "mg", 90)])
def test_roadrunner_reproduces_cartsim(model, therapy, disease, days):
    scenario = Scenario.make(therapy, disease, days)
    rel, fires, _ = _compare_scenario(model, scenario, typical(model, scenario.disease))
    worst = np.unravel_index(rel.argmax(), rel.shape)
    assert rel.max() < MATCH, f"{_columns(model)[worst[1]]} on day {scenario.start + worst[0]:g}: {rel.max():.2g}"
    assert fires == 0


@pytest.mark.parametrize("height, expected_fires", [(0.5, 1), (-0.05, 0)])
def test_rescue_trigger_fires_as_in_cartsim(model, height, expected_fires):
    scenario = Scenario.make("mb-cart19", "sle", 40)
    base = typical(model, scenario.disease)
    il6 = scenario.run(base, columns=("il6_signal",), model=model).values[0, :, 0]
    # half-way up the IL-6 peak: the rescue fires once; below the baseline: the signal never crosses upwards
    population = base.with_parameters({"crs_il6_grade2": il6[0] + height * (il6.max() - il6[0])})
    rel, fires, sol = _compare_scenario(model, scenario, population)
    assert fires == expected_fires == np.isfinite(sol.trigger_times[0, 0]).sum()
    assert rel.max() < MATCH
    assert (sol.column("toci_central")[0, -1] > 0) == (expected_fires > 0)


def test_trigger_rearms_after_falling_below_and_stops_at_max_fires(model):
    scenario = Scenario.make("mb-cart19", "sle", 20)
    base = typical(model, scenario.disease)
    il6 = scenario.run(base, columns=("il6_signal",), model=model).values[0, :, 0]
    # a small tocilizumab dose pushes the signal just below the threshold, so it crosses again (3 times in 20 days)
    population = base.with_parameters({"crs_il6_grade2": il6[0] + 0.2 * (il6.max() - il6[0]), "toci_mg_per_kg": 0.1})
    trigger = replace(model.event("tocilizumab_rescue"), max_fires=2)
    population, doses = scenario.patient_inputs(model, population)
    times = np.arange(scenario.start, scenario.days + 0.25, 0.25)
    sol = solve(model, population.params, times, _columns(model), doses, (engine_trigger(trigger),),
                t0=scenario.start, rtol=RTOL, atol=ATOL)
    assert np.isfinite(sol.trigger_times[0, 0]).sum() == 2
    inputs = replace(export_inputs(model, scenario, population), triggers=(trigger,))
    rr, values = _roadrunner(libsbml.writeSBMLToString(sbml_document(model, inputs)), times - scenario.start,
                             _columns(model))
    assert rr["tocilizumab_rescue_fires"] == 2
    assert _relative_error(values, sol.values[0]).max() < MATCH


def test_infusions_simultaneous_and_at_the_start(model):
    disease = Scenario.make("untreated", "healthy").disease
    params = typical(model, disease).params
    doses = (DoseRecord(2.0, "toci_central", 400.0, 0.5), DoseRecord(2.0, "toci_central", 100.0, 0.0),
             DoseRecord(3.0, "toci_central", 50.0, 0.0), DoseRecord(3.0, "toci_central", 25.0, 0.0),
             DoseRecord(2.25, "il6", 30.0, 2.0), DoseRecord(1.0, "il6", 5.0, 0.0), DoseRecord(1.0, "il6", 7.0, 0.0))
    inputs = replace(export_inputs(model), params=params[0], doses=doses, start=1.0)
    times = np.arange(1.0, 15.25, 0.25)
    engine_doses = Doses.from_records([doses], model.state_names)   # the same records for both
    sol = solve(model, params, times, model.state_names, engine_doses, t0=1.0, rtol=RTOL, atol=ATOL)
    text = libsbml.writeSBMLToString(sbml_document(model, inputs))
    _, values = _roadrunner(text, times - 1.0, model.state_names)
    assert _relative_error(values, sol.values[0]).max() < MATCH
    assert sol.column("toci_central")[0, times == 3.0][0] > 100.0
    assert sol.column("il6")[0, 0] > 12.0  # both boluses at the start are in the first output


def test_a_dose_before_the_start_is_refused_by_engine_and_export(model):
    """Regression: a dose before the start was given at the start by both (silently late)."""
    inputs = replace(export_inputs(model), doses=(DoseRecord(0.5, "il6", 5.0, 0.0),), start=1.0)
    with pytest.raises(ExportError, match="a dose into il6 on day 0.5 comes before the start"):
        sbml_document(model, inputs)


def test_trigger_on_a_jumping_state_is_refused(model):
    inputs = export_inputs(model, Scenario.make("untreated", "healthy"))
    with pytest.raises(ExportError, match="il6"):
        sbml_document(model, replace(inputs, doses=(DoseRecord(1.0, "il6", 10.0, 0.0),)))
    sbml_document(model, replace(inputs, doses=(DoseRecord(1.0, "il6", 10.0, 1.0),)))  # an infusion does not jump


def _toy_model(rate: sp.Expr):
    table = ParameterTable([ParameterRecord("k", 0.5, "1/day", "toy", "assumed", "test", "rate")])
    b = ModelBuilder(table)
    b.p("k")
    b.state("x", "mg", "amount", 1.0)
    b.flow("x", None, rate, "loss")
    return b.build()


def test_unsupported_math_is_refused():
    x, k = sp.symbols("x k")
    to_sbml(_toy_model(k * x))
    with pytest.raises(ExportError, match="Heaviside"):
        to_sbml(_toy_model(k * x * sp.Heaviside(x - 1)))


@pytest.mark.parametrize("text, terms", [
    ("1", []),
    ("mg/m2", [(libsbml.UNIT_KIND_GRAM, 1, -3, 1.0), (libsbml.UNIT_KIND_METRE, -2, 0, 1.0)]),
    ("pg/mL per (cells/uL-eq)", [(libsbml.UNIT_KIND_GRAM, 1, -12, 1.0), (libsbml.UNIT_KIND_LITRE, -1, -3, 1.0),
                                 (libsbml.UNIT_KIND_ITEM, -1, 0, 1.0), (libsbml.UNIT_KIND_LITRE, 1, -6, 1.0)]),
    ("1/day", [(libsbml.UNIT_KIND_SECOND, -1, 0, 86400.0)]),
    ("furlongs/fortnight", None),
])
def test_unit_parser(text, terms):
    assert parse_unit(text) == terms


def test_cli_export(tmp_path):
    runner = CliRunner()
    out = tmp_path / "m.xml"
    r = runner.invoke(app, ["export", "sbml", "--therapy", "mb-cart19", "--disease", "sle", "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert libsbml.readSBMLFromString(out.read_text()).getModel().getNumEvents() == 5
    assert [p.name for p in tmp_path.iterdir()] == ["m.xml"]


@pytest.mark.parametrize("args, field", [
    (["--therapy", "foo"], "--therapy"),
    (["--therapy", "mb-cart19", "--disease", "flu"], "--disease"),
    (["--therapy", "untreated", "--dose", "1e8 cells"], "--therapy"),
])
def test_cli_bad_input(tmp_path, args, field):
    out = tmp_path / "m.xml"
    r = CliRunner().invoke(app, ["export", "sbml", *args, "-o", str(out)])
    lines = [ln for ln in r.output.strip().splitlines() if ln]
    assert r.exit_code == 2 and len(lines) == 1 and lines[0].startswith(f"error: {field}:")
    assert list(tmp_path.iterdir()) == []


def test_cli_missing_folder(tmp_path):
    r = CliRunner().invoke(app, ["export", "sbml", "--therapy", "mb-cart19", "-o", str(tmp_path / "no" / "m.xml")])
    assert r.exit_code == 2 and "error: --output:" in r.output
    assert list(tmp_path.iterdir()) == []


def test_state_triggered_doses_come_from_the_model_definition(model):
    """Regression: the rescue was a constant of the scenario module and the export wrote it alone, so a
    re-treatment scenario's SBML lacked its second infusion; both are events of the model now."""
    from cartsim.outputs.equations import equations_html

    assert {e.name for e in model.events} == {"tocilizumab_rescue", "retreatment"}
    plain = export_inputs(model, Scenario.make("kyv-101", "ms", 100))
    again = export_inputs(model, Scenario.make("kyv-101", "ms", 100, retreat=True))
    assert [e.name for e in plain.triggers] == ["tocilizumab_rescue"]
    assert [e.name for e in again.triggers] == ["tocilizumab_rescue", "retreatment"]
    doc = sbml_document(model, again)       # kept: the model belongs to the document
    ids = [e.getId() for e in doc.getModel().getListOfEvents()]
    assert {"tocilizumab_rescue", "retreatment"} <= set(ids)
    html = str(equations_html(model))
    assert 'id="eq-event-tocilizumab_rescue"' in html and 'id="eq-event-retreatment"' in html
    assert "when the scenario asks for it" in html and "with every therapy" in html


def test_the_split_of_an_infusion_is_in_the_export_and_the_equations(model):
    """The make-up of a CAR-T infusion (effector and memory shares, untransduced T cells) was computed by the
    scenario, so the SBML's dose amounts held numbers no reader could trace; it is the model's bioavailability
    now: the dose events multiply by it and the report's equations show it."""
    from cartsim.outputs.equations import equations_html

    doc = sbml_document(model, export_inputs(model, Scenario.make("kyv-101", "ms", 30)))
    formulas = [libsbml.formulaToL3String(a.getMath()) for e in doc.getModel().getListOfEvents()
                for a in e.getListOfEventAssignments() if a.getVariable() in ("car_mem", "t_endo")]
    assert any("car_memory_share" in f for f in formulas) and any("car_transduction" in f for f in formulas)
    html = str(equations_html(model))
    assert 'id="eq-F-t_endo"' in html and "car_transduction" in html.split('id="eq-F-t_endo"')[1].split("</tr>")[0]

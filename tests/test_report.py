"""``report.html``: equations from the model definition, the parameter table, the validation table, offline HTML."""

import dataclasses
import random
import re
from html.parser import HTMLParser

import pytest
import sympy as sp
from typer.testing import CliRunner

from cartsim.cli import app
from cartsim.model import build_model
from cartsim.model.ir import Model
from cartsim.outputs import validation as val
from cartsim.outputs.equations import definition_html, model_equations, term_html, to_mathml
from cartsim.outputs.report import render
from cartsim.trial.config import parse_config
from cartsim.trial import stages
from cartsim.trial.run import execute, prepare
from cartsim.validate import Check, targets

CONFIG = """\
[trial]
name = "report"
seed = 5
horizon_days = 60

[population]
n = {n}
disease = "ms"

[[arm]]
name = "KYV-101"
therapy = "kyv-101"

[[arm]]
name = "Ofatumumab"
therapy = "ofatumumab"
"""

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


def fake_checks() -> list[Check]:
    """One check per acceptance key of every target: alternately passed and missed, one not computed."""
    out = []
    for i, (tid, t) in enumerate(targets().items()):
        for j, metric in enumerate(t["accept"]):
            passed = (i + j) % 3 != 0
            out.append(Check(tid, metric, float("nan") if (i, j) == (1, 0) else 0.5 + i, [0.0, 1.0], passed))
    return out


class Page(HTMLParser):
    """Tags checked for balance, resource URLs, and the text of every table cell by section."""

    def __init__(self):
        super().__init__()
        self.stack, self.errors, self.urls = [], [], []
        self.section, self.tables = None, {}
        self.cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.urls += [v for k, v in attrs if k in ("src", "href") and v]
        if tag == "section":
            self.section = a.get("id")
        if tag == "table":
            self.tables.setdefault(self.section, []).append([])
        if tag == "tr":
            self.tables[self.section][-1].append([])
        if tag in ("td", "th"):
            self.cell = []
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
            return
        self.stack.pop()
        if tag in ("td", "th") and self.cell is not None:
            self.tables[self.section][-1][-1].append(" ".join(" ".join(self.cell).split()))
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


def parse(html: str) -> Page:
    page = Page()
    page.feed(html)
    page.close()
    return page


@pytest.fixture(scope="module")
def trial(tmp_path_factory):
    """A small trial whose report's validation runs through the cache with fake checks."""
    tmp = tmp_path_factory.mktemp("report")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(val, "run_checks", fake_checks)
        mp.setattr(val, "cache_dir", lambda: tmp / "cache")
        plan = prepare(parse_config(CONFIG.format(n=5)), tmp / "out")
        result = execute(plan)
    html = (tmp / "out" / "report.html").read_text()
    return plan, result, html


@pytest.fixture(scope="module")
def page(trial):
    return parse(trial[2])


# ---- equations ---------------------------------------------------------------------------------

def _value(expr: sp.Expr, point: dict) -> float:
    return float(expr.xreplace(point).evalf())


def test_every_state_equation_is_the_models_rhs():
    model = build_model()
    eqs = model_equations(model)
    rhs = model.rhs()
    states = [e for c in eqs.components for e in c.states]
    assert sorted(e.state.name for e in states) == sorted(model.state_names)
    rng = random.Random(1)
    for e in states:
        assert e.rhs() == rhs[e.state.name]                       # the signed flows, exactly
        assert {id(t.flow) for t in e.terms} == {id(f) for f in model.flows if e.state.name in (f.source, f.target)}
        for t in e.terms:                                         # the displayed term, observables substituted back
            shown = eqs.unfold(t.shown)
            point = {s: sp.Float(rng.uniform(0.5, 2)) for s in t.flow.rate.free_symbols | shown.free_symbols}
            assert _value(shown, point) == pytest.approx(_value(t.flow.rate, point), rel=1e-9)


def test_report_shows_every_state_with_its_terms(trial):
    html = trial[2]
    model = build_model()
    eqs = model_equations(model)
    for c in eqs.components:
        for e in c.states:
            name = e.state.name
            start = html.index(">", html.index(f'id="eq-{name}"'))
            ends = [i for i in (html.find('class="state"', start), html.find("</table>", start)) if i > 0]
            block = html[start:min(ends)]
            assert f"<mi>{name}</mi></mrow><mrow>" in block               # d(name)/dt on the left
            for t in e.terms:
                assert str(term_html(t)) in block and t.flow.description in block
                for s in t.shown.free_symbols:
                    assert f"<mi>{s.name}</mi>" in block
    # a state whose flows need no folding: the printer applied to model.rhs() itself
    flu = model.rhs()["flu"]
    assert f"<mo>\u2212</mo>{to_mathml(-flu)}" in html


def test_derived_parameters_and_observables_are_defined(trial):
    html = trial[2]
    model = build_model()
    eqs = model_equations(model)
    defs = {d.name: d for c in eqs.components for d in (*c.derived, *c.observables)}
    assert set(defs) == {n for n, _ in model.derived} | set(model.observable_names)
    for name, expr in model.derived:
        assert defs[name].shown == expr
    rng = random.Random(2)
    for o in model.observables:
        shown = eqs.unfold(defs[o.name].shown)
        point = {s: sp.Float(rng.uniform(0.5, 2)) for s in o.expr.free_symbols | shown.free_symbols}
        assert _value(shown, point) == pytest.approx(_value(o.expr, point), rel=1e-9)
    for d in defs.values():
        assert f'id="eq-{d.name}"' in html and str(definition_html(d)) in html


# ---- parameters --------------------------------------------------------------------------------

def test_every_parameter_with_kind_and_source(page):
    table = page.tables["parameters"][0]
    header, rows = table[0], {r[0]: r for r in table[1:]}
    col = {h: i for i, h in enumerate(header)}
    model = build_model()
    assert set(rows) == {r.name for r in model.table}
    for r in model.table:
        row = rows[r.name]
        assert row[col["kind"]] == r.kind and row[col["source"]] == " ".join(r.source.split())
        assert row[col["unit"]] == " ".join(r.unit.split())
        assert row[col["value"]] == ("derived" if r.value is None else f"{r.value:.6g}")
        omega = row[col["IIV ω"]]
        assert omega.split(" ")[0] == (f"{r.iiv_omega:g}" if r.iiv_omega else "–")
        # an omega with its own provenance says so (the expansion rate's is fitted to the Kymriah label's spread)
        assert (f"({r.iiv_kind}: " in omega) == bool(r.iiv_kind)
    assert "(calibrated: " in rows["car_r_exp"][col["IIV ω"]]


def test_arm_overrides_with_their_source(page, trial):
    plan = trial[0]
    table = page.tables["parameters"][1]
    col = {h: i for i, h in enumerate(table[0])}
    rows = {(r[col["arm"]], r[col["parameter"]]): r for r in table[1:]}
    model = build_model()
    for a, arm in enumerate(plan.config.arm):
        sc = plan.config.scenario(a)
        values = sc.parameter_values(model.table)
        assert values, arm.name
        for key, prov in sc.parameter_provenance().items():
            row = rows[(arm.name, key)]
            assert row[col["arm value"]] == f"{values[key]:.6g}"
            assert row[col["source"]] == " ".join(prov["source"].split()) and row[col["set by"]] == prov["set_by"]
    assert rows[("Ofatumumab", "mab_v1")][col["set by"]] == "antibody ofatumumab"
    assert rows[("KYV-101", "car_costim_cd28")][col["set by"]] == "product kyv-101"
    assert rows[("KYV-101", "auto_share")][col["set by"]] == "disease ms"
    assert ("KYV-101", "mab_v1") not in rows


# ---- validation --------------------------------------------------------------------------------

def _validation_rows(page: Page) -> list[tuple[str, str, str]]:
    """(target, metric, result) per check; a target's cell spans the rows of its checks."""
    out, tid = [], None
    for row in page.tables["validation"][0][1:]:
        if len(row) == 7:
            tid = row[0].split()[0]
            row = row[1:5]
        out.append((tid, row[0], row[3]))
    return out


def test_validation_lists_every_check_with_its_result(page, trial):
    checks = fake_checks()
    assert _validation_rows(page) == [(c.id, c.metric, "pass" if c.passed else "MISSED") for c in checks]
    missed = sum(not c.passed for c in checks)
    assert missed > 0 and f"{missed} missed" in trial[2]
    assert "not computed" in trial[2]                       # a NaN prediction is shown, as a miss


def test_without_validation_the_section_says_so(tmp_path, trial):
    plan, result, _ = trial
    again = dataclasses.replace(plan, validation=False, resume=True)     # the finished chunks are reused
    sim = stages.simulate(again)
    data = stages.report_data(again, sim, stages.summarize(again, sim))
    assert data.validation is None
    html = render(data)
    assert "Not run" in html and "--no-validation" in html and "MISSED" not in html


def test_cli_no_validation(tmp_path, monkeypatch):
    def refuse():
        raise AssertionError("checks run despite --no-validation")

    monkeypatch.setattr(val, "run_checks", refuse)
    cfg = tmp_path / "t.toml"
    cfg.write_text(CONFIG.format(n=2))
    r = CliRunner().invoke(app, ["trial", str(cfg), "--out", str(tmp_path / "o"), "--no-validation"])
    assert r.exit_code == 0, r.output
    assert "Not run" in (tmp_path / "o" / "report.html").read_text()


def test_validation_cache_hits_and_misses(tmp_path, monkeypatch):
    calls = []

    def counted():
        calls.append(1)
        # every other check fitted: the flag must survive the cache (it was once dropped on reading, and a cached
        # report drew every check as a prediction)
        return [dataclasses.replace(c, calibrated=k % 2 == 0) for k, c in enumerate(fake_checks())]

    monkeypatch.setenv("CARTSIM_CACHE", str(tmp_path))
    monkeypatch.setattr(val, "run_checks", counted)
    first = val.cached_validation()
    files = list((tmp_path / "validation").iterdir())
    assert not first.cached and len(calls) == 1 and [f.suffix for f in files] == [".json"]   # no temporary left
    second = val.cached_validation()
    assert second.cached and len(calls) == 1
    assert [(c.id, c.metric, c.passed, c.calibrated) for c in second.checks] == \
        [(c.id, c.metric, c.passed, c.calibrated) for c in first.checks]
    assert any(c.calibrated for c in second.checks) and not all(c.calibrated for c in second.checks)
    assert any(c.predicted != c.predicted for c in second.checks)              # NaN survives the round trip

    fingerprint = Model.fingerprint
    monkeypatch.setattr(Model, "fingerprint", lambda self: fingerprint(self) + "\nF changed")
    assert not val.cached_validation().cached and len(calls) == 2
    assert len(list((tmp_path / "validation").iterdir())) == 2
    monkeypatch.setattr(Model, "fingerprint", fingerprint)
    assert val.cached_validation().cached and len(calls) == 2

    files[0].write_text("{ half a file")                                       # a damaged entry is recomputed
    assert not val.cached_validation().cached and len(calls) == 3


def test_cache_key_covers_parameter_values(monkeypatch):
    """The fingerprint holds the equations, not the values: a changed parameter file must change the key."""
    base = val.cache_key()
    files = val._keyed_files()
    assert any(f.name == "parameters.toml" for f in files) and any(f.name == "targets.yaml" for f in files)
    original = val.Path.read_bytes

    def edited(self):
        data = original(self)
        return data + b"\n# edited" if self.name == "parameters.toml" else data

    monkeypatch.setattr(val.Path, "read_bytes", edited)
    assert val.cache_key() != base


# ---- the page ----------------------------------------------------------------------------------

def test_html_well_formed_offline_with_contents(page, trial):
    html = trial[2]
    assert not page.errors and not page.stack
    assert not [u for u in page.urls if re.match(r"(https?:)?//", u)]
    assert all(u.startswith(("#", "data:image/png;base64,")) for u in page.urls)
    assert "<script" not in html and "<link" not in html and "@import" not in html
    for section in ("configuration", "endpoints", "trajectories", "events", "toxicity", "failures", "validation",
                    "methods", "parameters"):
        assert f'<section id="{section}">' in html and f'href="#{section}"' in html
    assert html.count("not medical advice") == 2 and "investigational" in html
    assert html.count("<math") > 100


def test_cache_key_covers_every_module_the_checks_run_through():
    """Regression: the outcome modules (MG visit scores, NMOSD attacks, MS relapses) were not keyed, so a change
    to how MG responders are drawn left the report's validation table stale."""
    import subprocess
    import sys

    code = ("import sys, cartsim, cartsim.validate; from pathlib import Path; "
            "root = Path(cartsim.__file__).parent; "
            "print('\\n'.join(str(Path(m.__file__).relative_to(root)) for n, m in list(sys.modules.items()) "
            "if n.startswith('cartsim') and getattr(m, '__file__', None)))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    from pathlib import Path

    import cartsim
    from cartsim.outputs import validation as val

    root = Path(cartsim.__file__).parent
    keyed = {str(p.relative_to(root)) for p in val._keyed_files()}
    # the version is keyed as such; errors only format messages
    assert set(loaded) - keyed <= {"__init__.py", "errors.py"}, sorted(set(loaded) - keyed)

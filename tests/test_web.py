"""``cartsim serve``: the JSON API (limits, errors, its own OpenAPI description), the plain-language text,
and the page in a real headless Chromium."""

import os
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pandas as pd
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from typer.testing import CliRunner
from schemathesis.specs.openapi.checks import positive_data_acceptance

from cartsim.cli import app as cli_app
from cartsim.scenario import therapy_names
from cartsim.web import text
from cartsim.web.app import create_app, default_pair
from cartsim.web.arms import Arm
from cartsim.web.schemas import DoseOut
from cartsim.web.schemas import Limits

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOT = ROOT / "test-artifacts" / "web-comparison.png"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SMALL = Limits(max_patients=6, min_days=30, max_days=60, default_patients=4, default_days=45)
APP = create_app(SMALL, warm_up=False)     # small limits keep every simulation of these tests short


@pytest.fixture(scope="module")
def client():
    with TestClient(APP) as c:
        yield c


# ---- the API ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("query, field, detail, allowed", [
    ("patients=7", "patients", "7 is over the request limit of 6 patients", "from 1 to 6"),
    ("days=61", "days", "61 is over the request limit of 60 days", "from 30 to 60"),
    ("days=29", "days", "must be from 30 to 60, got 29", "from 30 to 60"),
    ("patients=many", "patients", "must be a whole number, got 'many'", "from 1 to 6"),
    ("therapy_a=aspirin", "therapy_a", "unknown therapy_a 'aspirin'", "untreated"),
    ("disease=flu", "disease", "unknown disease 'flu'", "lbcl, mg, mg-musk, ms, nmosd, sle"),
    ("disease=sle&ms_course=rrms", "ms_course", "applies only when disease = 'ms'", None),
])
def test_bad_requests_name_the_field_and_what_is_allowed(client, query, field, detail, allowed):
    r = client.get(f"/api/compare?{query}")
    assert r.status_code == 422
    body = r.json()
    assert body["field"] == field and body["detail"].startswith(f"{field}: ") and detail in body["detail"], body
    assert allowed is None or allowed in body["allowed"], body


def test_options_list_the_models_therapies_and_limits(client):
    opts = client.get("/api/options").json()
    assert [t["name"] for t in opts["therapies"]] == therapy_names()
    assert opts["limits"]["max_patients"] == 6 and "investigational" in opts["disclaimer"]
    assert (opts["defaults"]["therapy_a"], opts["defaults"]["therapy_b"]) == default_pair()
    assert {p["column"] for p in opts["panels"]} >= {"b_blood_per_uL", "car_blood_per_uL", "igg"}


def test_dosing_timeline_one_infusion_against_repeated_doses(client):
    cart = client.get("/api/arm?therapy=kyv-101&patients=2&days=45").json()
    kinds = [(d["day"], d["kind"]) for d in cart["doses"]]
    assert kinds == [(-5.0, "lymphodepletion"), (-4.0, "lymphodepletion"), (-3.0, "lymphodepletion"),
                     (0.0, "car-t")]
    assert cart["lymphoma"]["disease"] == "lbcl" and set(cart["lymphoma"]["crs"]["fractions"]) == set("01234")
    assert client.get("/api/arm?therapy=untreated&patients=2&days=45").json()["doses"] == []
    if "ocrelizumab" in therapy_names():
        ocr = client.get("/api/arm?therapy=ocrelizumab&patients=2&days=45").json()
        assert [(d["day"], d["kind"], d["amount_mg"]) for d in ocr["doses"]] == [(0.0, "dose", 300.0),
                                                                                  (14.0, "dose", 300.0)]
        assert ocr["lymphoma"] is None


def test_the_cns_compartment_shows_only_in_a_disease_of_the_cns(client):
    """Regression (MG and MuSK MG pages): a 'Plasma cells in the CNS' panel and two rows on plasma cells and
    antibody 'in the brain and spinal fluid' showed for myasthenia gravis, a disease of the nerve-muscle junction.
    They show in MS and NMOSD (``cns = true`` in diseases.toml) and nowhere else."""
    cns_endpoints = {"cns_plasma_cell_fraction_day_90", "intrathecal_igg_fraction_day_180"}
    for disease, shown in (("mg", False), ("mg-musk", False), ("sle", False), ("ms", True), ("nmosd", True)):
        r = client.get(f"/api/compare?disease={disease}&therapy_a=kyv-101&therapy_b=untreated&patients=2&days=30")
        assert r.status_code == 200, r.text
        body = r.json()
        panels = {p["column"] for a in body["arms"] for p in a["panels"]}
        names = {n for a in body["arms"] for n in a["endpoints"]}
        assert ("cns_plasma_cells" in panels) is shown, disease
        assert (cns_endpoints <= names) is shown and (not cns_endpoints & names) is not shown, disease


def test_ms_course_is_accepted_for_ms(client):
    r = client.get("/api/compare?disease=ms&ms_course=rrms&patients=2&days=30")
    assert r.status_code == 200 and r.json()["ms_course"] == "rrms"


@pytest.mark.parametrize("port", ["0", "70000", "http"])
def test_serve_refuses_a_bad_port_in_one_line(port):
    r = CliRunner().invoke(cli_app, ["serve", "--port", port])
    assert r.exit_code == 2 and r.output.strip().startswith("error: --port:") and len(r.output.strip().splitlines()) == 1


schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


def _sent_query(case) -> dict[str, list[str]]:
    """The query as the request carries it (generated values such as ``[[]]`` or ``[{}]`` serialise to nothing)."""
    url = shlex.split(case.as_curl_command())[-1]
    return parse_qs(urlsplit(url).query, keep_blank_values=True)


@pytest.mark.parametrize("course, sent", [([[]], False), ([{}], False), ("ppms", True), (None, False)])
def test_generated_course_values_that_serialise_to_nothing_are_not_sent(course, sent):
    case = schema["/api/compare"]["GET"].Case(query={"disease": "sle"} | ({} if course is None else
                                                                          {"ms_course": course}))
    assert any(_sent_query(case).get("ms_course", [])) is sent


# one test per operation, named after it: schemathesis' own parametrisation gives all of them one test id,
# which pytest-xdist collapses into a single test
OPERATIONS = {op.ok().label: op.ok() for op in schema.get_all_operations()}


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_api_conforms_to_its_openapi_description(operation):
    """No 5xx, and every response (200 or 422) matches the schema the app publishes."""
    @given(case=OPERATIONS[operation].as_strategy())
    @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
    def conforms(case):
        query = _sent_query(case)
        if any(query.get("ms_course", [])) and query.get("disease", ["ms"]) != ["ms"]:
            # a rule across two fields that OpenAPI cannot state: refused with 422, which must still match the
            # schema
            assert case.call_and_validate(excluded_checks=[positive_data_acceptance]).status_code in (405, 422)
        else:
            case.call_and_validate()
    conforms()


# ---- plain-language text ---------------------------------------------------------------------------

def _arm(reappearance: list[float], naive: float = 0.95) -> Arm:
    n = len(reappearance)
    patients = pd.DataFrame({"bcell_baseline_per_uL": np.full(n, 300.0), "bcell_nadir_per_uL": np.full(n, 1e-4),
                             "bcell_reappearance_day": reappearance,
                             "bcell_reappearance_censored": np.array(reappearance) >= 365,
                             "naive_fraction_at_reappearance": np.full(n, naive)})
    return Arm("ms", "kyv-101", "car-t", "", n, 0, (-5.0, 365.0), {}, (DoseOut(day=0.0, kind="car-t", label="", duration_days=0.0, amount_mg=None),),
               {}, patients)


def test_reappearance_sentence_counts_patients_and_months():
    s = text.bcell_sentence(_arm([95, 100, 105, 110, 115, 120, 125, 130, 135, 365]))
    assert "below the detection limit of 1 cell/µL in 10 of 10" in s
    assert "In 7 of 10 they returned between month 3 and month 5, as naive cells (median naive share 95%)" in s
    assert "In 1 of 10 they had not returned by day 365" in s
    assert "mostly as memory cells" in text.bcell_sentence(_arm([100, 120], naive=0.2))


# ---- the page in Chromium ----------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    """``cartsim serve`` on a free loopback port, ready once it has warmed up."""
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-c", "from cartsim.cli import app; app()", "serve", "--port",
                             str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300      # the first run on a fresh cache compiles the model
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"cartsim serve exited with {proc.returncode}:\n{proc.stdout.read()}")
            try:
                with urllib.request.urlopen(f"{url}/api/health", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("cartsim serve did not answer within 300 s")
                time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        message = f"{CHROMIUM} is missing: install Debian's chromium package (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def test_page_compares_two_therapies_and_updates_on_change(server, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    a, b = default_pair()
    page.goto(server)
    page.wait_for_selector(f'body[data-state="ready"][data-pair="{a}|{b}"]', timeout=30_000)

    disclaimer = page.locator("#disclaimer")
    assert disclaimer.is_visible() and "investigational" in disclaimer.inner_text()
    assert "not medical advice" in disclaimer.inner_text()
    assert page.locator("#charts figure").count() >= 3
    assert page.locator("#timeline .dose-car-t").count() == 1
    assert page.locator("#safety-table tbody tr").count() >= 3          # both arms and the lymphoma reference
    summary = page.locator("#summary-section").inner_text()
    assert "simulated patients" in summary and "returned between month" in summary
    b_line = f'#chart-b_blood_per_uL path.median[data-therapy="{b}"]'
    before = page.locator(b_line).get_attribute("d")
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    print(f"screenshot: {SCREENSHOT}")

    page.select_option("#therapy_b", "untreated")
    page.wait_for_selector(f'body[data-state="ready"][data-pair="{a}|untreated"]', timeout=30_000)
    assert page.locator("#summary-section").inner_text() != summary
    assert "Blood B cells stayed near their starting level" in page.locator(".arm-summary.b").inner_text()
    after = page.locator('#chart-b_blood_per_uL path.median[data-therapy="untreated"]').get_attribute("d")
    assert after and after != before
    assert page.locator("#timeline .dose-dose").count() == 0

    page.locator("#q-safety summary").click()
    answer = page.locator("#q-safety p").inner_text()
    assert "lymphoma" in answer and "%" in answer
    assert errors == []

    page.fill("#patients", "100000")
    page.locator("#patients").dispatch_event("change")
    page.wait_for_selector('body[data-state="error"]', timeout=10_000)
    assert "patients: 100000 is over the request limit" in page.locator("#status").inner_text()
    page.close()


def _ready(page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector('body[data-state="ready"]', timeout=60_000)


DRAWN_Y = """() => [...document.querySelectorAll('#charts svg[data-column]')].map((s) => {
  const ys = [];
  for (const p of s.querySelectorAll('polygon.band'))
    for (const xy of p.getAttribute('points').split(' ')) ys.push(Number(xy.split(',')[1]));
  for (const p of s.querySelectorAll('path.median'))
    for (const m of p.getAttribute('d').matchAll(/[ML][^,]+,([^ML]+)/g)) ys.push(Number(m[1]));
  return { column: s.dataset.column, hi: Number(s.dataset.yHi), top: Number(s.dataset.plotTop),
           bottom: Number(s.dataset.plotBottom), min: Math.min(...ys), max: Math.max(...ys) };
})"""


@pytest.mark.parametrize("query", ["", "?ms_course=ppms"])
def test_charts_contain_their_data(server, browser, query):
    """The old page ended the axis at the last tick below the data, so the top of bands ran out of the plot."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    _ready(page, server + "/" + query)
    api = page.evaluate(f"fetch('/api/compare{query}').then((r) => r.json())")
    drawn = {c["column"]: c for c in page.evaluate(DRAWN_Y)}
    assert set(drawn) == {a["column"] for a in api["axes"]}
    for column, c in drawn.items():
        data = max(v for arm in api["arms"] for b in arm["panels"] if b["column"] == column
                   for s in ("p05", "median", "p95") for v in b[s] if v is not None)
        assert c["hi"] >= data, (column, c, data)
        assert c["top"] - 0.5 <= c["min"] and c["max"] <= c["bottom"] + 0.5, (column, c)
    page.close()


@pytest.mark.parametrize("width", [360, 390, 430])
def test_phone_widths_do_not_scroll_sideways(server, browser, width):
    page = browser.new_page(viewport={"width": width, "height": 800})
    _ready(page, server)
    assert page.evaluate("document.documentElement.scrollWidth") <= page.evaluate("window.innerWidth")
    # charts and the timeline are drawn at their own width (text at its set size, not scaled down)
    for sel in ["#charts svg[data-column]", "#timeline-svg"]:
        boxes = page.eval_on_selector_all(sel, "(ss) => ss.map((s) => [s.getBoundingClientRect().width, "
                                               "Number(s.getAttribute('width'))])")
        assert boxes and all(abs(w - attr) < 1 and w <= width for w, attr in boxes), (sel, boxes)
    page.close()


def test_page_speaks_plainly_and_shows_infusion_reactions(server, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    _ready(page, server)
    body = page.inner_text("body")
    assert body.index("cytokine release syndrome") < body.index("CRS")
    assert body.index("immune effector cell-associated neurotoxicity syndrome") < body.index("ICANS")
    assert re.search(r"\b1 events\b", body) is None and re.search(r"between (\d+%) and \1", body) is None
    assert re.findall(r"\b[a-z0-9]+_[a-z0-9_]+\b", page.inner_text("#endpoints")) == []    # human names
    # no false precision (only the model's expected relapse rates get a third digit, where counts are equal)
    summary = re.sub(r"The model's expected rates[^.]*\.\d+[^.]*\.\d+\.", "", page.inner_text("#summary-section"))
    assert re.search(r"\d\.\d{3,}", summary) is None
    api = page.evaluate("fetch('/api/compare').then((r) => r.json())")
    rows = page.locator("#safety-table tbody tr")
    for arm in api["arms"]:     # the arm's own row (published rows, when shown, sit between the arms)
        row = [r for r in range(rows.count()) if rows.nth(r).locator("td").first.inner_text() == arm["therapy"]][0]
        cell = rows.nth(row).locator("td.irr")
        irr = arm["safety"]["infusion_reaction"]
        if irr is None:
            assert cell.inner_text() == "not applicable"
        else:
            assert cell.inner_text().startswith(f"{round(100 * irr['value'])}%") and irr["value"] > 0
    page.close()


def test_page_says_bands_are_between_patients_not_what_is_unknown(server, browser):
    """The page says which spread it shows (patient to patient) and which it does not (the biology not yet known)."""
    page = browser.new_page(viewport={"width": 390, "height": 900})
    _ready(page, server)
    note = page.inner_text("#spread-note")
    assert "patients differ" in note and "not yet known about the biology" in note and "--uncertainty" in note
    assert page.locator("#spread-note").bounding_box()["width"] <= 390
    page.close()


def test_nmosd_and_mg_pages_speak_of_their_disease(server, browser):
    """Regression (NMOSD and MG pages): the MS course selector showed for every disease (a flex label ignored
    'hidden'); the antibody panel of eque-cel against inebilizumab was titled 'Anti-CD20 antibody' (inebilizumab
    is anti-CD19); a median IgG low of 0.3% read '0%'; the safety caption explained lymphoma rows that were not
    there; and the questions asked about MS and Ocrevus whatever the disease."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    _ready(page, server + "/?disease=nmosd&therapy_a=eque-cel&therapy_b=inebilizumab&days=365")
    assert not page.is_visible("#course-label")
    assert "aquaporin-4" in page.inner_text("#disease-about")
    titles = page.eval_on_selector_all("#charts h3", "(hs) => hs.map((h) => h.textContent)")
    assert any(t.startswith("Anti-CD19 antibody in serum") for t in titles) and not any("CD20" in t for t in titles)
    assert any(t.startswith("AQP4-IgG") for t in titles) and any(t.startswith("NMOSD attacks") for t in titles)
    questions = page.inner_text("#questions")
    assert "Is CAR-T therapy for NMOSD available?" in questions and "Will it replace Uplizna (inebilizumab)?" in questions
    assert " MS" not in questions and "Ocrevus" not in questions
    assert "lymphoma rows" not in page.inner_text("#safety")
    endpoints = page.inner_text("#endpoints")
    igg = next(line for line in endpoints.splitlines() if line.startswith("Lowest total antibody"))
    assert "\t0%" not in igg
    # the page's share format: IgG after eque-cel no longer falls below 1% (plasma cells now regrow), so the
    # format itself is checked on such a share
    assert page.evaluate("[pct(0.003), pct(0), pct(0.08)]") == ["<1%", "0%", "8%"]
    page.goto(server + "/?disease=mg&therapy_a=descartes-08&therapy_b=efgartigimod&days=365")
    page.wait_for_selector('body[data-state="ready"]', timeout=60_000)
    assert "MG-ADL" in page.inner_text("#disease-about")
    assert "MG-ADL responders" in page.inner_text("#arm-summaries")
    assert "descartes-08 is given as 6 infusions" in page.inner_text("#summary")
    # regression: the FcRn-blocker panel drew a flat line along zero for descartes-08, which is not given it
    drawn_in = page.eval_on_selector_all("#chart-fcrnb_conc path.median", "(ps) => ps.map((p) => p.dataset.therapy)")
    assert drawn_in == ["efgartigimod"]
    # and the panel keeps its place in the page order although the first arm does not list it
    order = page.eval_on_selector_all("#charts figure.chart", "(fs) => fs.map((f) => f.id)")
    assert order.index("chart-fcrnb_conc") < order.index("chart-autoantibody_level") < order.index("chart-mg_adl")
    # regression: a range of changes read "-12--2"; a range from a negative number reads "-8 to 4"
    week_12 = next(line for line in page.inner_text("#endpoints").splitlines()
                   if line.startswith("Change in MG-ADL score at week 12"))
    assert re.search(r"\(-\d+ to -?\d+\)", week_12) and "--" not in week_12 and "-–" not in week_12
    assert "6 infusions of CAR-T cells (days 0, 7, 14, 21, 28, 35), without lymphodepleting chemotherapy" in \
        page.inner_text("#arm-summaries")           # not 'one infusion' (a multi-dose mRNA CAR-T)
    # a detection limit below the axis is not drawn on its bottom line (B cells stay far above 1/uL here)
    b_axis = page.evaluate("fetch('/api/compare?disease=mg&therapy_a=descartes-08&therapy_b=efgartigimod"
                           "&days=365').then((r) => r.json())")
    lo = next(a["lo"] for a in b_axis["axes"] if a["column"] == "b_blood_per_uL")
    assert lo > 1 and "detection limit 1/µL" not in page.inner_text("#chart-b_blood_per_uL")
    ticks = page.text_content("#chart-car_blood_per_uL svg")    # the axis ends a decade under the 0.1/uL limit
    assert "0.01" in ticks and "e-" not in ticks                 # decimals people read, not '1e-2'
    page.goto(server + "/")
    page.wait_for_selector('body[data-state="ready"]', timeout=60_000)
    assert page.is_visible("#course-label")                  # MS keeps its course selector
    page.close()


BELOW_LIMIT = """(column) => {
  const s = document.querySelector(`#charts svg[data-column="${column}"]`);
  const shade = s.querySelector('rect.undetectable');
  const ys = [];
  for (const p of s.querySelectorAll('polygon.band'))
    for (const xy of p.getAttribute('points').split(' ')) ys.push(Number(xy.split(',')[1]));
  for (const p of s.querySelectorAll('path.median'))
    for (const m of p.getAttribute('d').matchAll(/[ML][^,]+,([^ML]+)/g)) ys.push(Number(m[1]));
  return { limit_y: shade ? Number(shade.getAttribute('y')) : null, lowest: Math.max(...ys),
           label: [...s.querySelectorAll('text')].some((t) => t.textContent === 'below detection limit') };
}"""


def test_nothing_is_drawn_below_an_assays_detection_limit(server, browser):
    """Regression: the page drew eque-cel's CAR-T median on below 0.1 cells/uL, where the assay measures nothing (the
    report shades that range and draws no line in it); now the page does the same for CAR-T and B cells."""
    from cartsim.web.arms import panels

    refs = {p.column: p.detection_limit for p in panels()}
    assert refs["car_blood_per_uL"] == 0.1 and refs["b_blood_per_uL"] == 1.0 and refs.get("igg") is None
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    _ready(page, server + "/?disease=nmosd&therapy_a=eque-cel&therapy_b=inebilizumab&days=730")
    api = page.evaluate("fetch('/api/compare?disease=nmosd&therapy_a=eque-cel&therapy_b=inebilizumab&days=730')"
                        ".then((r) => r.json())")
    car = next(b for arm in api["arms"] for b in arm["panels"] if b["column"] == "car_blood_per_uL")
    assert min(v for v in car["median"] if v is not None) < 0.1      # the case: the median falls below the limit
    axis = next(a for a in api["axes"] if a["column"] == "car_blood_per_uL")
    assert axis["lo"] <= 0.1 / 4 < 0.1 < axis["hi"]
    for column in ("car_blood_per_uL", "b_blood_per_uL"):
        drawn = page.evaluate(BELOW_LIMIT, column)
        assert drawn["label"] and drawn["limit_y"] is not None
        assert drawn["lowest"] <= drawn["limit_y"] + 0.5, (column, drawn)
    page.close()


def test_a_median_on_top_of_another_is_dashed_and_said(server, browser):
    """Regression: Descartes-08 and efgartigimod leave blood B cells alone, so their medians coincide and the page
    showed one line: the second arm looked missing. It is dashed now, and the figure says that the lines overlap;
    different medians stay solid."""
    page = browser.new_page(viewport={"width": 390, "height": 900})
    _ready(page, server + "/?disease=mg&therapy_a=descartes-08&therapy_b=efgartigimod&days=365")
    dashes = page.eval_on_selector_all("#chart-b_blood_per_uL path.median",
                                       "(ps) => ps.map((p) => [p.dataset.therapy, p.getAttribute('stroke-dasharray')])")
    assert dashes == [["descartes-08", None], ["efgartigimod", "7 5"]]
    caption = page.inner_text("#chart-b_blood_per_uL figcaption.overlap")
    assert "descartes-08 and efgartigimod" in caption and "on top of each other" in caption
    assert page.locator("#chart-igg figcaption.overlap").count() == 0       # IgG differs: solid lines only
    assert page.eval_on_selector_all("#chart-igg path.median[stroke-dasharray]", "(ps) => ps.length") == 0
    page.close()


def test_published_safety_sits_beside_the_simulated(client, server, browser):
    """The page showed CRS in most simulated Descartes-08 patients with nothing to compare it with; none of the 14
    patients of MG-001 had CRS. Trials of the same therapy in the same disease are shown under its simulated row."""
    api = client.get("/api/compare", params={"disease": "mg", "therapy_a": "descartes-08",
                                             "therapy_b": "efgartigimod", "days": 60}).json()
    arms = {a["therapy"]: a for a in api["arms"]}
    (mg001,) = arms["descartes-08"]["published"]
    assert (mg001["label"], mg001["n"], mg001["crs_any"], mg001["icans_any"]) == ("MG-001", 14, 0.0, 0.0)
    assert arms["efgartigimod"]["published"] == []
    # since CRS is fitted across products (bench/calibrate_crs.py) the simulated share is as rare as MG-001's
    assert arms["descartes-08"]["safety"]["crs"]["fraction_any"] < 0.2
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    _ready(page, server + "/?disease=sle&therapy_a=mb-cart19&therapy_b=efgartigimod&days=120")
    names = page.eval_on_selector_all("#safety-table tbody tr", "(rs) => rs.map((r) => r.cells[0].textContent)")
    i = names.index("mb-cart19")
    assert names[i + 1:i + 3] == ["mb-cart19, published (Mackensen 2022)", "mb-cart19, published (Mueller 2024)"]
    mueller = page.locator("#safety-table tr.published").nth(1).inner_text()
    assert "SLE, myositis or systemic sclerosis" in mueller and "73%" in mueller and "not reported" in mueller
    assert "published give what a trial" in page.inner_text("#safety")
    page.close()


def test_an_arm_without_published_safety_in_its_disease_shows_its_product_in_other_autoimmune_diseases():
    """The default page (KYV-101 in MS) showed simulated CRS and ICANS with nothing published beside them, though
    KYV-101's patients with lupus nephritis (KYSA-1) are published: the rows of the same product in other
    autoimmune diseases are shown, never those of a cancer, and a disease's own rows take precedence."""
    from cartsim.web.arms import published_safety

    ms = published_safety("kyv-101", "ms")
    assert [(p["label"], p["population"], p["n"]) for p in ms] == [("KYSA-1", "lupus nephritis", 2)]
    assert [p["label"] for p in published_safety("mb-cart19", "sle")] == ["Mackensen 2022", "Mueller 2024"]
    assert [p["label"] for p in published_safety("eque-cel", "nmosd")] == ["CT103A"]
    assert published_safety("kyv-101", "lbcl") == [] and published_safety("ocrelizumab", "ms") == []
    assert all(p["label"] != "ZUMA-1" for p in published_safety("axi-cel", "ms"))


def test_every_published_safety_entry_names_what_the_page_can_show():
    """A safety entry of the targets that named an unknown therapy or disease, or lacked a field, would never show or
    would break the page: each names a known therapy and disease and fits the API's schema."""
    from cartsim.disease import diseases
    from cartsim.therapy import antibodies, products
    from cartsim.validate import targets
    from cartsim.web.arms import published_safety
    from cartsim.web.schemas import PublishedSafety

    entries = [(tid, t["safety"]) for tid, t in targets().items() if "safety" in t]
    assert len(entries) >= 6
    known = set(products()) | set(antibodies())
    for tid, s in entries:
        assert s["therapy"] in known and s["disease"] in diseases(), tid
        assert s["n"] > 0 and all(0 <= s[k] <= 1 for k in ("crs_any", "crs_grade2plus", "icans_any",
                                                           "icans_grade2plus") if s.get(k) is not None), tid
        for p in published_safety(s["therapy"], s["disease"]):
            PublishedSafety(**p)


@pytest.mark.parametrize("disease, a, b, small", [("lbcl", "liso-cel", "axi-cel", False),
                                                 ("nmosd", "eque-cel", "inebilizumab", True)])
def test_published_rows_are_called_small_only_when_a_trial_is(server, browser, disease, a, b, small):
    """Regression: the caption called every published trial small ('a few patients more or less change these shares
    a lot'), beside ZUMA-1's 101 and TRANSCEND's 269 patients."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    _ready(page, f"{server}/?disease={disease}&therapy_a={a}&therapy_b={b}")
    caption = page.locator("#safety .caption").inner_text()
    assert "Rows marked published" in caption
    assert ("are small" in caption) is small, caption
    page.close()

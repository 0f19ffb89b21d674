// cartsim comparison page: reads /api/options, asks /api/compare, draws everything as plain SVG.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const COLORS = ["#1f6fb4", "#d95f02"];
const GRADE_COLORS = ["#e6e9ee", "#f6c343", "#f08c2e", "#d9482b", "#8e1b12"];
const MONTH = 365.25 / 12;
const UNITLESS = new Set(["1", "", "fraction", "dimensionless"]);
const SMALL_TRIAL = 50;     // patients: below this a published share is called uncertain
const FIELDS = ["disease", "ms_course", "therapy_a", "therapy_b", "patients", "days", "seed"];
let options = null;
let requestId = 0;
let shown = null;        // the comparison on the page, redrawn when the width changes

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const c of children) node.append(c);
  return node;
}

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const c of children) node.append(c);
  return node;
}

// axis labels: 0.001, 0.5, 10, 1,000, 100,000 (never 1e+5)
function fmt(x) {
  if (x === null || x === undefined || Number.isNaN(x)) return "–";
  const a = Math.abs(x);
  // small tick values as decimals people read ("0.0001", not "1e-4"); exponents only below a millionth
  if (a !== 0 && a < 1e-6) return x.toExponential(0);
  if (a !== 0 && a < 1e-3) return String(Number(x.toPrecision(2)).toFixed(Math.ceil(-Math.log10(a)) + 1)).replace(/0+$/, "");
  if (a >= 100) return Math.round(x).toLocaleString("en-US");
  return String(Number(x.toPrecision(3)));
}

// numbers for people: two significant digits, whole numbers from 10 on (day 10, not day 10.05)
function num(x) {
  if (x === null || x === undefined || Number.isNaN(x)) return "–";
  const a = Math.abs(x);
  if (a >= 10) {
    const digits = Math.max(Math.floor(Math.log10(a)) - 1, 0);
    return (Math.round(x / 10 ** digits) * 10 ** digits).toLocaleString("en-US");
  }
  if (a !== 0 && a < 0.001) return "<0.001";
  return String(Number(x.toPrecision(2)));
}
const plural = (k, word) => `${k} ${word}${k === 1 ? "" : "s"}`;
// a range of two formatted numbers: "5–9", but "−12 to −2" where a dash would read as a minus sign
const span = (lo, hi) => (/^-/.test(lo) || /^-/.test(hi) ? `${lo} to ${hi}` : `${lo}–${hi}`);

// "kyv-101: blood B cells ..." under the heading kyv-101 reads "Blood B cells ..."
const withoutName = (s, name) =>
  (s.startsWith(`${name}: `) ? s[name.length + 2].toUpperCase() + s.slice(name.length + 3) : s);
const unit = (u) => u.replace(/\bu(L|g)\b/g, "µ$1");
// a share that rounds to 0% but is not 0 reads "<1%" (a median IgG of 0.3% is not none)
const pct = (x) => (x === null || x === undefined ? "–" : x > 0 && x < 0.005 ? "<1%" : `${Math.round(100 * x)}%`);

class ApiError extends Error {}

async function getJSON(url) {
  const response = await fetch(url);
  const body = await response.json();
  if (!response.ok) throw new ApiError(body.detail + (body.allowed ? ` (allowed: ${body.allowed})` : ""));
  return body;
}

// ---- controls -----------------------------------------------------------------------------------

function fillSelect(select, choices, label) {
  select.replaceChildren(...choices.map((c) => el("option", { value: c.name, title: c.description || "" }, label(c))));
}

function currentParams() {
  const params = new URLSearchParams();
  for (const name of FIELDS) {
    const input = $(name);
    if (name === "ms_course" && ($("course-label").hidden || !input.value)) continue;
    params.set(name, input.value);
  }
  return params;
}

function showCourse() {
  const chosen = options.diseases.find((c) => c.name === $("disease").value);
  $("disease-about").textContent = (chosen && chosen.about) || "";
  const show = $("disease").value === "ms" && options.ms_courses.length > 0;
  $("course-label").hidden = !show;
  $("course-note").hidden = !show || !options.ms_course_note;
}

function setupControls() {
  const d = options.defaults;
  // MS has its own course selector: its description's "(relapsing unless a course is given)" is left out
  fillSelect($("disease"), options.diseases, (c) => (c.name === "ms" ? "multiple sclerosis" : c.description));
  for (const id of ["therapy_a", "therapy_b"]) fillSelect($(id), options.therapies, (c) => c.name);
  const courseNames = { rrms: "relapsing-remitting", spms: "secondary progressive", ppms: "primary progressive" };
  $("ms_course").replaceChildren(el("option", { value: "" }, "default (relapsing-remitting)"),
    ...options.ms_courses.map((c) => el("option", { value: c }, `${c.toUpperCase()}: ${courseNames[c] || c}`)));
  $("course-note").textContent = options.ms_course_note || "";
  $("patients").max = options.limits.max_patients;
  $("days").min = options.limits.min_days;
  $("days").max = options.limits.max_days;
  const url = new URLSearchParams(window.location.search);
  const initial = { disease: d.disease, ms_course: "", therapy_a: d.therapy_a, therapy_b: d.therapy_b,
                    patients: d.patients, days: d.days, seed: d.seed };
  for (const name of FIELDS) $(name).value = url.get(name) ?? initial[name];
  showCourse();
  $("controls").addEventListener("change", () => { showCourse(); update(); });
  $("controls").addEventListener("submit", (e) => { e.preventDefault(); update(); });
}

async function update() {
  const id = ++requestId;
  const params = currentParams();
  document.body.dataset.state = "loading";
  $("status").textContent = `Simulating ${params.get("patients")} virtual patients per therapy…`;
  history.replaceState(null, "", `?${params}`);
  const started = performance.now();
  try {
    const data = await getJSON(`/api/compare?${params}`);
    if (id !== requestId) return;
    render(data);
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    $("status").textContent = `${data.patients} virtual patients with ${data.disease_name}, ${data.days} days, ` +
      `seed ${data.seed}: answered in ${seconds} s.`;
    document.body.dataset.pair = `${data.arms[0].therapy}|${data.arms[1].therapy}`;
    document.body.dataset.state = "ready";
  } catch (err) {
    if (id !== requestId) return;
    document.body.dataset.state = "error";
    $("status").textContent = err instanceof ApiError ? `Not simulated: ${err.message}` : `Error: ${err.message}`;
  }
}

// ---- rendering ----------------------------------------------------------------------------------

function render(data) {
  shown = data;
  const arms = data.arms;
  $("summary").replaceChildren(...data.summary.map((s) => el("li", {}, s)));
  $("arm-summaries").replaceChildren(...arms.map((a, i) => el("div", { class: `arm-summary ${"ab"[i]}` },
    el("h3", {}, el("span", { class: `swatch ${"ab"[i]}` }), a.therapy),
    el("ul", {}, ...a.summary.map((s) => el("li", {}, withoutName(s, a.therapy)))))));
  $("legend").replaceChildren(...arms.map((a, i) =>
    el("span", {}, el("span", { class: `swatch ${"ab"[i]}` }), `${a.therapy}: ${a.description}`)));
  renderCharts(arms, data.axes);
  renderTimeline(arms);
  renderSafety(arms, data.glossary);
  $("questions").replaceChildren(...data.questions.map((q, i) => {
    const d = el("details", { id: `q-${q.id}` }, el("summary", {}, q.question), el("p", {}, q.answer));
    if (i === 0) d.open = true;
    return d;
  }));
  renderEndpoints(arms, data.endpoint_labels);
  $("footer-disclaimer").textContent = data.disclaimer;
}

// charts and the timeline are drawn at the width they get (text stays readable on a phone); redraw on resize
let drawnWidth = 0;
function redrawOnResize() {
  const w = $("charts").clientWidth;
  if (!shown || Math.abs(w - drawnWidth) < 2) return;
  renderCharts(shown.arms, shown.axes);
  renderTimeline(shown.arms);
}

function xDomain(arms) {
  const lo = Math.min(...arms.map((a) => a.days[0]));
  const hi = Math.max(...arms.map((a) => a.days[a.days.length - 1]));
  return [lo, hi];
}

function monthTicks(lo, hi, width = 1000) {
  const span = (hi - lo) / MONTH;
  const fit = Math.max(2, Math.floor(width / 28));          // at most one month label per 28 px
  const step = [1, 2, 3, 6, 12].find((s) => span / s <= fit) || 12;
  const ticks = [];
  for (let m = 0; m * MONTH <= hi + 1e-9; m += step) ticks.push(m);
  return ticks;
}

// the API's axis for the panel: it contains every value drawn (lo <= value <= hi)
function yScale(axis) {
  if (!axis.log) return { map: (v) => (v - axis.lo) / (axis.hi - axis.lo), ticks: axis.ticks, clamp: (v) => v };
  const lo = Math.log10(axis.lo), span = Math.log10(axis.hi) - lo || 1;
  return { map: (v) => (Math.log10(v) - lo) / span, ticks: axis.ticks, clamp: (v) => Math.max(v, axis.lo) };
}

function chartWidth() {
  // two columns from 1000 px of room, else one; figures have 8 px padding and a 1 px border each side
  const room = $("charts").clientWidth;
  const columns = room >= 1000 ? 2 : 1;
  return Math.max(240, Math.floor((room - 14 * (columns - 1)) / columns) - 18);
}

function renderCharts(arms, axes) {
  drawnWidth = $("charts").clientWidth;
  const W = chartWidth(), H = W < 420 ? 220 : 250, L = 50, R = 10, T = 10, B = 34;
  const [x0, x1] = xDomain(arms);
  const X = (d) => L + ((d - x0) / (x1 - x0)) * (W - L - R);
  // in page order (the axes'), not in the order the arms happen to list them (one arm may lack a drug's level)
  const columns = axes.map((a) => a.column).filter((c) => arms.some((a) => a.panels.some((p) => p.column === c)));
  const charts = columns.map((column) => {
    const panel = arms.flatMap((a) => a.panels).find((p) => p.column === column);
    // arms may title a panel differently (an anti-CD20 and an anti-CD19 antibody share one level): name both
    const title = [...new Set(arms.flatMap((a) => a.panels).filter((p) => p.column === column).map((p) => p.title))]
      .join(" / ");
    const axis = axes.find((a) => a.column === column);
    const y = yScale(axis);
    const Y = (v) => T + (1 - y.map(y.clamp(v))) * (H - T - B);
    const plot = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img",
                              "aria-label": `${title} over time`, "data-column": column,
                              "data-y-lo": axis.lo, "data-y-hi": axis.hi, "data-plot-top": T,
                              "data-plot-bottom": H - B });
    // an assay's detection limit: what lies below it is not measured, so the range is shaded and named, and no
    // line or band is drawn in it (as in the report)
    const limit = (panel.references || []).find((r) => r.detection && y.map(r.value) >= 0 && y.map(r.value) <= 1);
    const floor = limit ? limit.value : -Infinity;
    if (limit) {
      plot.append(svg("rect", { x: L, y: Y(limit.value), width: W - R - L, height: H - B - Y(limit.value),
                                class: "undetectable" }));
    }
    for (const t of y.ticks) {
      plot.append(svg("line", { class: "grid", x1: L, x2: W - R, y1: Y(t), y2: Y(t) }),
                  svg("text", { x: L - 6, y: Y(t) + 4, "text-anchor": "end" }, fmt(t)));
    }
    for (const m of monthTicks(x0, x1, W - L - R)) {
      plot.append(svg("line", { class: "axis", x1: X(m * MONTH), x2: X(m * MONTH), y1: H - B, y2: H - B + 4 }),
                  svg("text", { x: X(m * MONTH), y: H - B + 16, "text-anchor": "middle" }, String(m)));
    }
    plot.append(svg("text", { x: (L + W - R) / 2, y: H - 4, "text-anchor": "middle" }, "months after day 0"),
                svg("line", { class: "axis", x1: L, x2: W - R, y1: H - B, y2: H - B }),
                svg("line", { class: "axis", x1: L, x2: L, y1: T, y2: H - B }),
                svg("line", { x1: X(0), x2: X(0), y1: T, y2: H - B, stroke: "#9aa1ad", "stroke-dasharray": "3 3" }));
    // reference lines (assay limits, lower limit of normal: the API's, from the endpoint dictionary); one outside
    // the axis is not drawn (not on its bottom line)
    if (limit) plot.append(svg("text", { x: L + 6, y: H - B - 6, class: "ref" }, "below detection limit"));
    for (const ref of panel.references || []) {
      const at = y.map(ref.value);
      if (!(at >= 0 && at <= 1)) continue;
      plot.append(svg("line", { x1: L, x2: W - R, y1: Y(ref.value), y2: Y(ref.value), stroke: "#777",
                                "stroke-dasharray": "6 4" }),
                  svg("text", { x: W - R - 2, y: Y(ref.value) - 4, "text-anchor": "end", class: "ref" }, ref.label));
    }
    const medians = [], overlaps = [];
    arms.forEach((arm, i) => {
      const band = arm.panels.find((p) => p.column === column);
      if (!band) return;
      const pts = arm.days.map((d, k) => [d, band.p05[k], band.median[k], band.p95[k]])
        .filter((p) => p[1] !== null && p[2] !== null && p[3] !== null);
      if (!pts.length || (panel.log && pts.every((p) => !(p[3] > 0)))) return;   // nothing to draw on a log axis
      if (pts.every((p) => p[3] < floor)) {   // undetectable throughout: said, not drawn
        plot.append(svg("text", { x: L + 6, y: Y(floor) - 6 - 14 * i, fill: COLORS[i], class: "ref undetected",
                                  "data-therapy": arm.therapy }, `${arm.therapy}: below the detection limit throughout`));
        return;
      }
      // the band where its top is measurable (its bottom held at the limit), the median where it is
      for (const run of runs(pts, (p) => p[3] >= floor)) {
        const upper = run.map((p) => `${X(p[0]).toFixed(1)},${Y(p[3]).toFixed(1)}`);
        const lower = run.map((p) => `${X(p[0]).toFixed(1)},${Y(Math.max(p[1], floor)).toFixed(1)}`).reverse();
        plot.append(svg("polygon", { points: [...upper, ...lower].join(" "), fill: COLORS[i], "fill-opacity": 0.16,
                                     stroke: "none", class: "band", "data-therapy": arm.therapy }));
      }
      const line = runs(pts, (p) => p[2] >= floor).map((run) => run.map((p) => [X(p[0]), Y(p[2])]));
      if (!line.length) return;
      // a median that lies on an earlier arm's would hide it: it is drawn dashed, and the figure says so
      const twin = medians.find((m) => sameLine(m.line, line));
      const d = line.map((run) => run.map(([x, yy], k) => `${k ? "L" : "M"}${x.toFixed(1)},${yy.toFixed(1)}`).join(""))
        .join("");
      plot.append(svg("path", { d, fill: "none", stroke: COLORS[i], "stroke-width": 2, class: "median",
                                "data-therapy": arm.therapy, ...(twin ? { "stroke-dasharray": "7 5" } : {}) },
                      svg("title", {}, `${arm.therapy}: median`)));
      if (twin) {
        overlaps.push(`${twin.therapy} and ${arm.therapy}: the same median; the lines lie on top of each other ` +
                      `(${arm.therapy} dashed)`);
      }
      medians.push({ therapy: arm.therapy, line });
    });
    return el("figure", { class: "chart", id: `chart-${column}` },
              el("h3", {}, title + (UNITLESS.has(panel.unit) ? "" : ` (${unit(panel.unit)})`) +
                 (panel.log ? ", log scale" : "")), plot,
              ...overlaps.map((text) => el("figcaption", { class: "overlap" }, text)));
  });
  $("charts").style.gridTemplateColumns = chartWidth() * 2 < $("charts").clientWidth ? "1fr 1fr" : "1fr";
  $("charts").replaceChildren(...charts);
}

// two medians (runs of [x, y] pixels) that a reader could not tell apart: they span the same x range and each
// point of one lies within a pixel of the other (arms are sampled on different days, so it is interpolated)
function sameLine(a, b) {
  const span = (l) => [l[0][0][0], l[l.length - 1][l[l.length - 1].length - 1][0]];
  const [a0, a1] = span(a), [b0, b1] = span(b);
  if (Math.abs(a0 - b0) > 2 || Math.abs(a1 - b1) > 2) return false;
  const near = (line, other) => line.flat().every(([x, y]) => {
    const at = yAt(other, x);
    return at === null || Math.abs(at - y) <= 1.0;
  });
  return near(a, b) && near(b, a);
}

// the y of a line (runs of [x, y]) at x, linearly between its points; null where it has no point around x
function yAt(line, x) {
  for (const run of line) {
    for (let k = 0; k < run.length; k++) {
      if (run[k][0] === x) return run[k][1];
      if (k && run[k - 1][0] < x && x < run[k][0]) {
        const f = (x - run[k - 1][0]) / (run[k][0] - run[k - 1][0]);
        return run[k - 1][1] + f * (run[k][1] - run[k - 1][1]);
      }
    }
  }
  return null;
}

// consecutive points that pass ``keep``, as separate runs (a line or band is broken where they do not)
function runs(points, keep) {
  const out = [];
  let run = [];
  for (const p of points) {
    if (keep(p)) run.push(p);
    else if (run.length) { out.push(run); run = []; }
  }
  if (run.length) out.push(run);
  return out;
}

function renderTimeline(arms) {
  // each row: the therapy and its number of doses above, the marks on a line below, across the full width
  const W = Math.max(240, $("timeline").clientWidth), row = 52, L = 12, R = 12, T = 4, B = 30;
  const H = T + row * arms.length + B;
  const [x0, x1] = xDomain(arms);
  const X = (d) => L + ((d - x0) / (x1 - x0)) * (W - L - R);
  const plot = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img",
                            "aria-label": "dosing timeline", id: "timeline-svg" });
  for (const m of monthTicks(x0, x1, W - L - R)) {
    plot.append(svg("line", { class: "grid", x1: X(m * MONTH), x2: X(m * MONTH), y1: T, y2: H - B }),
                svg("text", { x: X(m * MONTH), y: H - B + 16, "text-anchor": "middle" }, String(m)));
  }
  plot.append(svg("text", { x: (L + W - R) / 2, y: H - 2, "text-anchor": "middle" }, "months after day 0"));
  arms.forEach((arm, i) => {
    const top = T + row * i, yc = top + 34;
    const infusions = arm.doses.filter((d) => d.kind !== "lymphodepletion");
    const what = !infusions.length ? "no treatment" : infusions.every((d) => d.kind === "car-t") ?
      plural(infusions.length, "infusion") : plural(infusions.length, "dose");
    plot.append(svg("line", { class: "axis", x1: L, x2: W - R, y1: yc, y2: yc }),
                svg("text", { x: L, y: top + 14, class: "row-label" },
                    svg("tspan", { fill: COLORS[i], "font-weight": 600 }, arm.therapy), ` · ${what}`));
    for (const d of arm.doses) {
      const x = X(d.day);
      const title = svg("title", {}, `day ${fmt(d.day)}: ${d.label}`);
      let mark;
      if (d.kind === "lymphodepletion") {
        mark = svg("rect", { x: x - 3, y: yc - 3, width: 6, height: 6, fill: "#777" }, title);
      } else if (d.kind === "car-t") {
        mark = svg("path", { d: `M${x},${yc - 10}L${x + 8},${yc}L${x},${yc + 10}L${x - 8},${yc}Z`,
                             fill: COLORS[i] }, title);
      } else {
        mark = svg("rect", { x: x - 2, y: yc - 9, width: 4, height: 18, fill: COLORS[i] }, title);
      }
      mark.setAttribute("class", `dose dose-${d.kind}`);
      plot.append(mark);
    }
  });
  const caption = el("p", { class: "caption" }, "Diamond: CAR-T infusion; grey squares: lymphodepleting " +
    "chemotherapy; bars: antibody or drug doses. Hover or tap a mark for the dose.");
  $("timeline").replaceChildren(plot, caption);
}

function gradeBar(grades) {
  const W = 100, H = 16;
  const bar = svg("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", class: "grade-bar", role: "img",
                           "aria-label": "grades" });
  let x = 0;
  for (let g = 0; g <= 4; g++) {
    const f = (grades && grades.fractions[String(g)]) || 0;
    if (f > 0) bar.append(svg("rect", { x, y: 0, width: f * W, height: H, fill: GRADE_COLORS[g] },
                              svg("title", {}, `grade ${g}: ${pct(f)}`)));
    x += f * W;
  }
  return bar;
}

function proportionText(p) {
  if (!p) return el("span", { class: "na" }, "not applicable");
  const ci = p.ci95 ? ` (95% CI ${pct(p.ci95[0])}–${pct(p.ci95[1])})` : "";
  return `${pct(p.value)}${ci}`;
}

function gradesCell(g) {
  if (!g) return el("td", {}, el("span", { class: "na" }, "not simulated"));
  return el("td", {}, el("div", { class: "grades" }, gradeBar(g), el("span", {}, `any ${pct(g.fraction_any)}`)));
}

function renderSafety(arms, glossary) {
  const columns = ["therapy", "patients with", "n", "CRS", "CRS grade ≥2", "ICANS", "ICANS grade ≥2",
                   "infusion reactions"];
  const head = el("tr", {}, ...columns.map((h) => el("th", {}, h)));
  const labelled = (tr) => {
    [...tr.children].forEach((td, k) => td.setAttribute("data-label", columns[k]));
    return tr;
  };
  const simulated = (name, s) => labelled(el("tr", {}, el("td", {}, name), el("td", {}, s.disease_name),
    el("td", {}, String(s.n)), gradesCell(s.crs), el("td", {}, pct(s.crs && s.crs.fraction_grade2plus)),
    gradesCell(s.icans), el("td", {}, pct(s.icans && s.icans.fraction_grade2plus)),
    el("td", { class: "irr" }, proportionText(s.infusion_reaction))));
  // what a trial of the same therapy reported in real patients (in the same disease, else another autoimmune one)
  const share = (v) => (v === null || v === undefined ? el("span", { class: "na" }, "not reported") : pct(v));
  const reported = (arm, p) => labelled(el("tr", { class: "published", "data-therapy": arm.therapy },
    el("td", { title: p.source }, `${arm.therapy}, published (${p.label})`), el("td", {}, p.population),
    el("td", {}, String(p.n)), el("td", {}, share(p.crs_any)), el("td", {}, share(p.crs_grade2plus)),
    el("td", {}, share(p.icans_any)), el("td", {}, share(p.icans_grade2plus)),
    el("td", {}, el("span", { class: "na" }, "not reported"))));
  // each arm: its simulated row, what trials reported, then the same product in lymphoma
  const lymphoma = (arm) => arm.lymphoma && arm.lymphoma.disease !== arm.safety.disease;
  const body = arms.flatMap((arm) => [
    simulated(arm.therapy, arm.safety),
    ...(arm.published || []).map((p) => reported(arm, p)),
    ...(lymphoma(arm) ? [simulated(`${arm.therapy} (same product, dose and lymphodepletion)`, arm.lymphoma)] : []),
  ]);
  const published = arms.some((arm) => (arm.published || []).length);
  // a trial is called small only where one is (ZUMA-1 and TRANSCEND treated 101 and 269 patients)
  const small = arms.some((arm) => (arm.published || []).some((p) => p.n < SMALL_TRIAL));
  // the lymphoma rows are explained only where there are some (a BCMA product has no lymphoma to compare with)
  const key = el("p", { class: "caption" }, "Bar colours: grade 0 (none) to grade 4, left to right. " +
    (arms.some(lymphoma) ? "The lymphoma rows simulate the same CAR-T product in large B-cell lymphoma " +
      "for the first days after infusion, where CRS and ICANS occur. " : "") +
    "Infusion reactions: share of simulated patients with at least one " +
    "reaction to an antibody infusion; not applicable where the model has no data for the therapy." +
    (published ? " Rows marked published give what a trial of the same therapy reported in real patients, in " +
      "the same disease or, where there is none yet, in another autoimmune disease (the row names its " +
      "patients). " + (small ? `Trials of fewer than ${SMALL_TRIAL} patients (the n column) are small: a few ` +
      "patients more or less change their shares a lot. " : "") + "Where a published row differs from the " +
      "simulated one, the model has not captured that yet." : ""));
  $("safety").replaceChildren(el("p", { id: "glossary", class: "glossary" }, glossary),
    el("div", { class: "scroll" }, el("table", { id: "safety-table" }, el("thead", {}, head),
                                      el("tbody", {}, ...body))), key);
}

function endpointText(e, name) {
  if (!e) return "–";
  const days = /_day$/.test(name || "");
  switch (e.kind) {
    case "ordinal":
      return e.fraction_any === null || e.fraction_any === undefined ? "not applicable" :
        `any ${pct(e.fraction_any)}, ≥2 ${pct(e.fraction_grade2plus)}, ≥3 ${pct(e.fraction_grade3plus)}`;
    case "binary":
      return e.value === null || e.value === undefined ? "not applicable" :
        `${pct(e.value)}` + (e.ci95 ? ` (${pct(e.ci95[0])}–${pct(e.ci95[1])})` : "");
    case "rate":
      return e.value === null || e.value === undefined ? "not applicable" :
        `${num(e.value)}` + (e.ci95 ? ` (${span(num(e.ci95[0]), num(e.ci95[1]))})` : "");
    case "time_to_event": {
      const censored = e.n_censored ? `, ${e.n_censored} not by the end` : "";
      if (!e.n_events) return e.n_censored ? `no event (${e.n_censored} not by the end)` : "not applicable";
      const spread = num(e.p05) === num(e.p95) ? "" : ` (${span(num(e.p05), num(e.p95))})`;
      return `${days ? "day " : ""}${num(e.median)}${spread}, ${plural(e.n_events, "event")}${censored}`;
    }
    default: {
      if (e.median === null || e.median === undefined) return "not applicable";
      const f = /fraction/.test(name || "") ? pct : num;     // shares of baseline as percent
      return f(e.p05) === f(e.p95) ? f(e.median) : `${f(e.median)} (${span(f(e.p05), f(e.p95))})`;
    }
  }
}

function renderEndpoints(arms, labels) {
  const names = [...new Set(arms.flatMap((a) => Object.keys(a.endpoints)))];
  const head = el("tr", {}, el("th", {}, "endpoint"), ...arms.map((a) => el("th", {}, a.therapy)));
  const body = names.map((n) => el("tr", {}, el("td", { title: n }, unit((labels && labels[n]) || n)),
    ...arms.map((a) => el("td", {}, endpointText(a.endpoints[n], n)))));
  const note = el("p", { class: "caption" }, "Median (5th–95th percentile) over simulated patients; time to event: " +
    "over patients with the event; ordinal: share of patients by grade; share and rate: value (95% CI).");
  $("endpoints").replaceChildren(el("div", { class: "scroll" }, el("table", { id: "endpoints-table" },
    el("thead", {}, head), el("tbody", {}, ...body))), note);
}

async function init() {
  try {
    options = await getJSON("/api/options");
  } catch (err) {
    document.body.dataset.state = "error";
    $("status").textContent = `Error: ${err.message}`;
    return;
  }
  $("footer-disclaimer").textContent = options.disclaimer;
  setupControls();
  update();
}

document.addEventListener("DOMContentLoaded", init);
let resizeTimer = 0;
window.addEventListener("resize", () => { clearTimeout(resizeTimer); resizeTimer = setTimeout(redrawOnResize, 150); });

// cartsim comparison page: reads /api/options, asks /api/compare, draws everything as plain SVG.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const COLORS = ["#1f6fb4", "#d95f02"];
const GRADE_COLORS = ["#e6e9ee", "#f6c343", "#f08c2e", "#d9482b", "#8e1b12"];
const REFERENCE_LINES = { b_blood_per_uL: [1, "detection limit 1/µL"] };
const MONTH = 365.25 / 12;
const FIELDS = ["disease", "ms_course", "therapy_a", "therapy_b", "patients", "days", "seed"];
let options = null;
let requestId = 0;

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

function fmt(x) {
  if (x === null || x === undefined || Number.isNaN(x)) return "–";
  const a = Math.abs(x);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return x.toExponential(1);
  if (a >= 100) return x.toFixed(0);
  return String(Number(x.toPrecision(3)));
}

// "kyv-101: blood B cells ..." under the heading kyv-101 reads "Blood B cells ..."
const withoutName = (s, name) =>
  (s.startsWith(`${name}: `) ? s[name.length + 2].toUpperCase() + s.slice(name.length + 3) : s);
const unit = (u) => u.replace(/\bu(L|g)\b/g, "µ$1");
const pct = (x) => (x === null || x === undefined ? "–" : `${Math.round(100 * x)}%`);

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
  const show = $("disease").value === "ms" && options.ms_courses.length > 0;
  $("course-label").hidden = !show;
  $("course-note").hidden = !show || !options.ms_course_note;
}

function setupControls() {
  const d = options.defaults;
  fillSelect($("disease"), options.diseases, (c) => `${c.name} — ${c.description}`);
  for (const id of ["therapy_a", "therapy_b"]) fillSelect($(id), options.therapies, (c) => c.name);
  $("ms_course").replaceChildren(el("option", { value: "" }, "not set"),
    ...options.ms_courses.map((c) => el("option", { value: c }, c.toUpperCase())));
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
  const arms = data.arms;
  $("summary").replaceChildren(...data.summary.map((s) => el("li", {}, s)));
  $("arm-summaries").replaceChildren(...arms.map((a, i) => el("div", { class: `arm-summary ${"ab"[i]}` },
    el("h3", {}, el("span", { class: `swatch ${"ab"[i]}` }), a.therapy),
    el("ul", {}, ...a.summary.map((s) => el("li", {}, withoutName(s, a.therapy)))))));
  $("legend").replaceChildren(...arms.map((a, i) =>
    el("span", {}, el("span", { class: `swatch ${"ab"[i]}` }), `${a.therapy}: ${a.description}`)));
  renderCharts(arms);
  renderTimeline(arms);
  renderSafety(arms);
  $("questions").replaceChildren(...data.questions.map((q, i) => {
    const d = el("details", { id: `q-${q.id}` }, el("summary", {}, q.question), el("p", {}, q.answer));
    if (i === 0) d.open = true;
    return d;
  }));
  renderEndpoints(arms);
  $("footer-disclaimer").textContent = data.disclaimer;
}

function xDomain(arms) {
  const lo = Math.min(...arms.map((a) => a.days[0]));
  const hi = Math.max(...arms.map((a) => a.days[a.days.length - 1]));
  return [lo, hi];
}

function monthTicks(lo, hi) {
  const span = (hi - lo) / MONTH;
  const step = span <= 14 ? 1 : span <= 30 ? 3 : 6;
  const ticks = [];
  for (let m = 0; m * MONTH <= hi + 1e-9; m += step) ticks.push(m);
  return ticks;
}

function logTicks(lo, hi) {
  const ticks = [];
  for (let k = Math.ceil(Math.log10(lo)); k <= Math.floor(Math.log10(hi)); k++) ticks.push(10 ** k);
  return ticks.length > 7 ? ticks.filter((_, i) => i % 2 === 0) : ticks;
}

function linearTicks(hi) {
  const raw = hi / 4;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((f) => f * mag).find((s) => s >= raw);
  const ticks = [];
  for (let t = 0; t <= hi + 1e-12; t += step) ticks.push(t);
  return ticks;
}

function yScale(panel, bands) {
  const values = bands.flatMap((b) => [...b.p05, ...b.median, ...b.p95]).filter((v) => v !== null && v > 0);
  const top = values.length ? Math.max(...values) : 1;
  if (!panel.log) {
    const t = linearTicks(top * 1.05);
    const hi = t[t.length - 1] || 1;
    return { map: (v) => v / hi, ticks: t, clamp: (v) => v, label: fmt };
  }
  const floor = Math.max(values.length ? Math.min(...values) : top / 1e3, top * 1e-6);
  const lo = 10 ** Math.floor(Math.log10(floor));
  const hi = 10 ** Math.ceil(Math.log10(top));
  const span = Math.log10(hi) - Math.log10(lo) || 1;
  return { map: (v) => (Math.log10(v) - Math.log10(lo)) / span, ticks: logTicks(lo, hi),
           clamp: (v) => Math.max(v, lo), label: fmt };
}

function renderCharts(arms) {
  const W = 520, H = 250, L = 56, R = 12, T = 10, B = 34;
  const [x0, x1] = xDomain(arms);
  const X = (d) => L + ((d - x0) / (x1 - x0)) * (W - L - R);
  const columns = [...new Set(arms.flatMap((a) => a.panels.map((p) => p.column)))];
  const charts = columns.map((column) => {
    const panel = arms.flatMap((a) => a.panels).find((p) => p.column === column);
    const bands = arms.map((a) => a.panels.find((p) => p.column === column)).filter(Boolean);
    const y = yScale(panel, bands);
    const Y = (v) => T + (1 - y.map(y.clamp(v))) * (H - T - B);
    const plot = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img",
                              "aria-label": `${panel.title} over time`, "data-column": column });
    for (const t of y.ticks) {
      plot.append(svg("line", { class: "grid", x1: L, x2: W - R, y1: Y(t), y2: Y(t) }),
                  svg("text", { x: L - 6, y: Y(t) + 4, "text-anchor": "end" }, y.label(t)));
    }
    for (const m of monthTicks(x0, x1)) {
      plot.append(svg("line", { class: "axis", x1: X(m * MONTH), x2: X(m * MONTH), y1: H - B, y2: H - B + 4 }),
                  svg("text", { x: X(m * MONTH), y: H - B + 16, "text-anchor": "middle" }, String(m)));
    }
    plot.append(svg("text", { x: (L + W - R) / 2, y: H - 4, "text-anchor": "middle" }, "months after day 0"),
                svg("line", { class: "axis", x1: L, x2: W - R, y1: H - B, y2: H - B }),
                svg("line", { class: "axis", x1: L, x2: L, y1: T, y2: H - B }),
                svg("line", { x1: X(0), x2: X(0), y1: T, y2: H - B, stroke: "#9aa1ad", "stroke-dasharray": "3 3" }));
    const ref = REFERENCE_LINES[column];
    if (ref && y.map(y.clamp(ref[0])) <= 1) {
      plot.append(svg("line", { x1: L, x2: W - R, y1: Y(ref[0]), y2: Y(ref[0]), stroke: "#777",
                                "stroke-dasharray": "6 4" }),
                  svg("text", { x: W - R - 2, y: Y(ref[0]) - 4, "text-anchor": "end" }, ref[1]));
    }
    arms.forEach((arm, i) => {
      const band = arm.panels.find((p) => p.column === column);
      if (!band) return;
      const pts = arm.days.map((d, k) => [d, band.p05[k], band.median[k], band.p95[k]])
        .filter((p) => p[1] !== null && p[2] !== null && p[3] !== null);
      if (!pts.length || (panel.log && pts.every((p) => !(p[3] > 0)))) return;   // nothing to draw on a log axis
      const upper = pts.map((p) => `${X(p[0]).toFixed(1)},${Y(p[3]).toFixed(1)}`);
      const lower = pts.map((p) => `${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).reverse();
      plot.append(svg("polygon", { points: [...upper, ...lower].join(" "), fill: COLORS[i], "fill-opacity": 0.16,
                                   stroke: "none", class: "band", "data-therapy": arm.therapy }));
      const d = pts.map((p, k) => `${k ? "L" : "M"}${X(p[0]).toFixed(1)},${Y(p[2]).toFixed(1)}`).join("");
      plot.append(svg("path", { d, fill: "none", stroke: COLORS[i], "stroke-width": 2, class: "median",
                                "data-therapy": arm.therapy }, svg("title", {}, `${arm.therapy}: median`)));
    });
    return el("figure", { class: "chart", id: `chart-${column}` },
              el("h3", {}, `${panel.title} (${unit(panel.unit)})${panel.log ? ", log scale" : ""}`), plot);
  });
  $("charts").replaceChildren(...charts);
}

function renderTimeline(arms) {
  const W = 1040, row = 44, L = 150, R = 16, T = 8, B = 30;
  const H = T + row * arms.length + B;
  const [x0, x1] = xDomain(arms);
  const X = (d) => L + ((d - x0) / (x1 - x0)) * (W - L - R);
  const plot = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img", "aria-label": "dosing timeline",
                            id: "timeline-svg" });
  for (const m of monthTicks(x0, x1)) {
    plot.append(svg("line", { class: "grid", x1: X(m * MONTH), x2: X(m * MONTH), y1: T, y2: H - B }),
                svg("text", { x: X(m * MONTH), y: H - B + 16, "text-anchor": "middle" }, String(m)));
  }
  plot.append(svg("text", { x: (L + W - R) / 2, y: H - 2, "text-anchor": "middle" }, "months after day 0"));
  arms.forEach((arm, i) => {
    const yc = T + row * i + row / 2;
    const infusions = arm.doses.filter((d) => d.kind !== "lymphodepletion").length;
    plot.append(svg("line", { class: "axis", x1: L, x2: W - R, y1: yc, y2: yc }),
                svg("text", { x: 4, y: yc - 2, fill: COLORS[i] }, arm.therapy),
                svg("text", { x: 4, y: yc + 12 }, infusions === 1 ? "1 infusion" :
                    infusions ? `${infusions} doses` : "no treatment"));
    for (const d of arm.doses) {
      const x = X(d.day);
      const title = svg("title", {}, `day ${fmt(d.day)}: ${d.label}`);
      let mark;
      if (d.kind === "lymphodepletion") {
        mark = svg("rect", { x: x - 3, y: yc - 3, width: 6, height: 6, fill: "#777" }, title);
      } else if (d.kind === "car-t") {
        mark = svg("path", { d: `M${x},${yc - 11}L${x + 9},${yc}L${x},${yc + 11}L${x - 9},${yc}Z`,
                             fill: COLORS[i] }, title);
      } else {
        mark = svg("rect", { x: x - 2.5, y: yc - 10, width: 5, height: 20, fill: COLORS[i] }, title);
      }
      mark.setAttribute("class", `dose dose-${d.kind}`);
      plot.append(mark);
    }
  });
  const caption = el("p", { class: "caption" }, "Diamond: CAR-T infusion; grey squares: lymphodepleting " +
    "chemotherapy; bars: antibody or drug doses. Hover a mark for the dose.");
  $("timeline").replaceChildren(plot, caption);
}

function gradeBar(grades) {
  const W = 260, H = 16;
  const bar = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img", "aria-label": "grades" });
  let x = 0;
  for (let g = 0; g <= 4; g++) {
    const f = (grades && grades.fractions[String(g)]) || 0;
    if (f > 0) bar.append(svg("rect", { x, y: 0, width: f * W, height: H, fill: GRADE_COLORS[g] },
                              svg("title", {}, `grade ${g}: ${pct(f)}`)));
    x += f * W;
  }
  return bar;
}

function renderSafety(arms) {
  const rows = [];
  for (const arm of arms) {
    rows.push([arm.therapy, arm.safety]);
    if (arm.lymphoma && arm.lymphoma.disease !== arm.safety.disease) {
      rows.push([`${arm.therapy} (same product, dose and lymphodepletion)`, arm.lymphoma]);
    }
  }
  const head = el("tr", {}, ...["therapy", "patients with", "n", "CRS", "CRS grade ≥2", "ICANS", "ICANS grade ≥2"]
    .map((h) => el("th", {}, h)));
  const body = rows.map(([name, s]) => el("tr", {}, el("td", {}, name), el("td", {}, s.disease_name),
    el("td", {}, String(s.n)),
    el("td", {}, gradeBar(s.crs)), el("td", {}, pct(s.crs && s.crs.fraction_grade2plus)),
    el("td", {}, gradeBar(s.icans)), el("td", {}, pct(s.icans && s.icans.fraction_grade2plus))));
  const key = el("p", { class: "caption" }, "Bar colours: grade 0 (none) to grade 4, left to right. " +
    "The lymphoma rows simulate the same CAR-T product in large B-cell lymphoma for the first days after " +
    "infusion, where CRS and ICANS occur.");
  $("safety").replaceChildren(el("table", { id: "safety-table" }, el("thead", {}, head), el("tbody", {}, ...body)),
                              key);
}

function endpointText(e) {
  if (!e) return "–";
  switch (e.kind) {
    case "ordinal":
      return `any ${pct(e.fraction_any)}, ≥2 ${pct(e.fraction_grade2plus)}, ≥3 ${pct(e.fraction_grade3plus)}`;
    case "binary":
    case "rate":
      return e.value === null ? "–" : `${fmt(e.value)}` + (e.ci95 ? ` [${fmt(e.ci95[0])}–${fmt(e.ci95[1])}]` : "");
    case "time_to_event":
      if (!e.n_events) return e.n_censored ? `no event (${e.n_censored} censored)` : "–";
      return `${fmt(e.median)} [${fmt(e.p05)}–${fmt(e.p95)}], ${e.n_events} events, ${e.n_censored} censored`;
    default:
      return e.median === null ? "–" : `${fmt(e.median)} [${fmt(e.p05)}–${fmt(e.p95)}]`;
  }
}

function renderEndpoints(arms) {
  const names = [...new Set(arms.flatMap((a) => Object.keys(a.endpoints)))];
  const head = el("tr", {}, el("th", {}, "endpoint"), ...arms.map((a) => el("th", {}, a.therapy)));
  const body = names.map((n) => el("tr", {}, el("td", {}, el("code", {}, n)),
    ...arms.map((a) => el("td", {}, endpointText(a.endpoints[n])))));
  const note = el("p", { class: "caption" }, "Median [5th–95th percentile] over simulated patients; time to event: " +
    "over patients with the event (day); ordinal: share of patients by grade; binary and rate: value [95% CI].");
  $("endpoints").replaceChildren(el("table", {}, el("thead", {}, head), el("tbody", {}, ...body)), note);
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

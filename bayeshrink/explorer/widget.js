// The shrinkage explorer: one ES module for anywidget (Jupyter, JupyterLab, VS Code, marimo) and
// for the self-contained page that `Explorer.save` and `bayeshrink explore` write.
//
// Everything is computed here in closed form, so the pictures follow the pointer:
//   se_j   = sigma / sqrt(n_j * m)        (long data; summary data: se_j / sqrt(m))
//   B_j    = se_j^2 / (se_j^2 + tau^2)    (shrinkage: the fraction of the way to mu)
//   mu     = sum w_j ybar_j / sum w_j,  w_j = 1 / (se_j^2 + tau^2)   (the GLS mean)
//   BLUP_j = mu + (1 - B_j) (ybar_j - mu),  posterior SD_j = sqrt((1 - B_j) se_j^2)
//
// Data (group labels, column names) are text: they reach the page only through textContent and
// SVG text nodes, never through innerHTML.

const SVGNS = "http://www.w3.org/2000/svg";
const COLOR = { prior: "#3b6fb6", lik: "#e07b1f", post: "#2e9e5b", mu: "#3b6fb6", ink: "#222" };
const STEPS_PER_DECADE = 50; // slider resolution on the log scale
const MULT_MIN = -4; // group-size multiplier 2^-4 .. 2^10
const MULT_MAX = 10;
const MAX_DRAWN = 300; // groups drawn in the arrow and curve panels (spread over the estimates)
const MAX_ROWS = 200; // rows in the table; state() always has every group
let instances = 0;

// ------------------------------------------------------------------ small helpers
function h(tag, attrs = {}, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

function s(tag, attrs = {}, text) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

const SUP = {
  "-": "⁻",
  "+": "",
  0: "⁰",
  1: "¹",
  2: "²",
  3: "³",
  4: "⁴",
  5: "⁵",
  6: "⁶",
  7: "⁷",
  8: "⁸",
  9: "⁹",
};

function fmt(x, digits = 4) {
  if (x === null || x === undefined || !Number.isFinite(x)) return "–";
  if (x === 0) return "0";
  const a = Math.abs(x);
  if (a >= 1e5 || a < 1e-3) {
    const [m, e] = x.toExponential(digits - 1).split("e");
    const mant = String(Number(m));
    return `${mant}×10${[...e].map((c) => SUP[c]).join("")}`;
  }
  return String(Number(x.toPrecision(digits)));
}

// (not Math.max(...xs): spreading a long array overflows the argument limit)
function maxOf(xs) {
  let m = -Infinity;
  for (const x of xs) if (x > m) m = x;
  return m;
}

function minOf(xs) {
  let m = Infinity;
  for (const x of xs) if (x < m) m = x;
  return m;
}

function dnorm(x, m, sd) {
  const z = (x - m) / sd;
  return Math.exp(-0.5 * z * z) / (sd * Math.sqrt(2 * Math.PI));
}

function niceTicks(lo, hi, count = 5) {
  const span = hi - lo;
  if (!(span > 0)) return [lo];
  const raw = span / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const r = raw / mag;
  const step = (r >= 7.5 ? 10 : r >= 3.5 ? 5 : r >= 1.5 ? 2 : 1) * mag;
  const out = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) {
    out.push(Math.abs(t) < step * 1e-9 ? 0 : t);
  }
  return out;
}

// ------------------------------------------------------------------ the mathematics
function compute(d, value, mult) {
  const long = d.kind === "long";
  const tau2 = long ? value * d.sigma * d.sigma : value * value;
  const k = d.labels.length;
  const se = new Array(k);
  const B = new Array(k);
  let sw = 0;
  let swy = 0;
  for (let j = 0; j < k; j++) {
    const sj = long ? d.sigma / Math.sqrt(d.n[j] * mult) : d.se[j] / Math.sqrt(mult);
    const v = sj * sj;
    se[j] = sj;
    B[j] = v / (v + tau2);
    const w = 1 / (v + tau2);
    sw += w;
    swy += w * d.own[j];
  }
  const mu = swy / sw;
  const blup = d.own.map((y, j) => mu + (1 - B[j]) * (y - mu));
  const postsd = se.map((sj, j) => Math.sqrt((1 - B[j]) * sj * sj));
  return { value, tau2, tau: Math.sqrt(tau2), ratio: long ? value : null, mu, se, B, blup, postsd };
}

function regimeOf(r) {
  if (r.tau2 === 0) return "complete";
  if (maxOf(r.B) < 0.01) return "none";
  return "partial";
}

// The control's log-scale grid: position 0 is tau = 0 (complete pooling); position pA is the
// fitted value (or the middle of the range for a boundary fit); the top end is far above the fit,
// where every group keeps more than 99% of its own estimate.
function gridOf(d) {
  const long = d.kind === "long";
  const fitted = long ? d.ratio : d.tau;
  let lo;
  let hi;
  if (long) {
    lo = Math.log10(0.01 / maxOf(d.n));
    hi = Math.log10(1000 / minOf(d.n));
  } else {
    lo = Math.log10(0.1 * minOf(d.se));
    hi = Math.log10(30 * maxOf(d.se));
  }
  const anchor = fitted > 0 ? Math.log10(fitted) : (lo + hi) / 2;
  lo = Math.min(lo, anchor - 1);
  hi = Math.max(hi, anchor + 1.5);
  const below = Math.ceil((anchor - lo) * STEPS_PER_DECADE);
  const above = Math.ceil((hi - anchor) * STEPS_PER_DECADE);
  return { fitted, anchor, pA: 1 + below, max: 1 + below + above };
}

function valueAt(g, pos) {
  if (pos <= 0) return 0;
  if (pos === g.pA && g.fitted > 0) return g.fitted;
  return 10 ** (g.anchor + (pos - g.pA) / STEPS_PER_DECADE);
}

function posOf(g, v) {
  if (!(v > 0)) return 0;
  if (v === g.fitted) return g.pA;
  const p = Math.round(g.pA + (Math.log10(v) - g.anchor) * STEPS_PER_DECADE);
  return Math.min(Math.max(p, 1), g.max);
}

// With many groups, draw a subset spread evenly over the own estimates (and always the chosen one).
function spreadSubset(d) {
  const k = d.labels.length;
  const all = d.labels.map((_, i) => i);
  if (k <= MAX_DRAWN) return all;
  const byOwn = all.slice().sort((a, b) => d.own[a] - d.own[b]);
  const pick = new Set();
  for (let q = 0; q < MAX_DRAWN; q++) pick.add(byOwn[Math.round((q * (k - 1)) / (MAX_DRAWN - 1))]);
  return [...pick].sort((a, b) => a - b);
}

function withChosen(drawn, j) {
  const order = drawn.filter((i) => i !== j);
  order.push(j); // the chosen group last, on top
  return order;
}

// ------------------------------------------------------------------ drawing
const W = 470;
const H = 270;

function frame(svg, m) {
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  return { x0: m.l, y0: m.t, pw, ph, x1: m.l + pw, y1: m.t + ph };
}

function xAxis(svg, f, ticks, sx, label, fmtTick = fmt) {
  svg.append(s("line", { x1: f.x0, x2: f.x1, y1: f.y1, y2: f.y1, class: "bsx-axis" }));
  for (const t of ticks) {
    const x = sx(t);
    if (x < f.x0 - 0.5 || x > f.x1 + 0.5) continue;
    svg.append(s("line", { x1: x, x2: x, y1: f.y1, y2: f.y1 + 4, class: "bsx-axis" }));
    svg.append(
      s("text", { x, y: f.y1 + 16, "text-anchor": "middle", class: "bsx-tick" }, fmtTick(t)),
    );
  }
  svg.append(
    s(
      "text",
      { x: (f.x0 + f.x1) / 2, y: H - 4, "text-anchor": "middle", class: "bsx-label" },
      label,
    ),
  );
}

function title(svg, text) {
  svg.append(s("text", { x: W / 2, y: 15, "text-anchor": "middle", class: "bsx-title" }, text));
}

function pathOf(xs, ys) {
  return xs.map((x, i) => `${i ? "L" : "M"}${x.toFixed(2)},${ys[i].toFixed(2)}`).join("");
}

function drawTriplot(svg, d, r, j, xr, uid) {
  svg.replaceChildren();
  const f = frame(svg, { l: 16, r: 12, t: 26, b: 38 });
  const sx = (x) => f.x0 + ((x - xr[0]) / (xr[1] - xr[0])) * f.pw;
  svg.append(s("defs", {}));
  const clip = s("clipPath", { id: `${uid}-clip` });
  clip.append(s("rect", { x: f.x0, y: f.y0 - 2, width: f.pw, height: f.ph + 2 }));
  svg.firstChild.append(clip);
  title(svg, `${d.labels[j]}: prior × likelihood ∝ posterior`);

  const own = d.own[j];
  const se = r.se[j];
  // drawn in this order so that the (dashed) likelihood stays visible on the posterior
  const curves = [];
  if (r.tau > 0) curves.push({ key: "prior", m: r.mu, sd: r.tau });
  if (r.postsd[j] > 0) curves.push({ key: "post", m: r.blup[j], sd: r.postsd[j] });
  curves.push({ key: "lik", m: own, sd: se });
  const likPeak = dnorm(0, 0, se);
  const peak = maxOf(curves.map((c) => dnorm(0, 0, c.sd)));
  const ymax = 1.08 * Math.min(peak, 4 * likPeak);
  const sy = (y) => f.y1 - (y / ymax) * f.ph;
  const N = 240;
  const xs = Array.from({ length: N + 1 }, (_, i) => xr[0] + ((xr[1] - xr[0]) * i) / N);
  const g = s("g", { "clip-path": `url(#${uid}-clip)` });
  for (const c of curves) {
    const ys = xs.map((x) => sy(dnorm(x, c.m, c.sd)));
    g.append(
      s("path", {
        d: `${pathOf(xs.map(sx), ys)}L${sx(xr[1])},${f.y1}L${sx(xr[0])},${f.y1}Z`,
        class: `bsx-area bsx-${c.key}`,
      }),
    );
    g.append(
      s("path", {
        d: pathOf(xs.map(sx), ys),
        class: `bsx-curve bsx-${c.key}`,
        "data-curve": c.key,
      }),
    );
  }
  if (r.tau === 0) {
    // tau = 0: the prior, and so the posterior, is a point mass at mu.
    const x = sx(r.mu);
    g.append(
      s("line", {
        x1: x,
        x2: x,
        y1: f.y1,
        y2: f.y0 + 4,
        class: "bsx-spike",
        "data-curve": "spike",
      }),
    );
    g.append(s("circle", { cx: x, cy: f.y0 + 4, r: 3.5, class: "bsx-spike-head" }));
    svg.append(
      s(
        "text",
        { x: x + 6, y: f.y0 + 14, class: "bsx-note" },
        "prior = posterior: point mass at μ",
      ),
    );
  }
  svg.append(g);
  svg.append(s("line", { x1: sx(r.mu), x2: sx(r.mu), y1: f.y0, y2: f.y1, class: "bsx-mu" }));
  const theta = d.theta || `the group's mean of ${d.response}`;
  xAxis(svg, f, niceTicks(xr[0], xr[1], 6), sx, `θ (${theta})`);
  // markers below the axis: own estimate, mu, BLUP
  const marks = [
    [own, "lik", "ȳ"],
    [r.mu, "prior", "μ"],
    [r.blup[j], "post", "BLUP"],
  ];
  for (const [x, key, name] of marks) {
    const cx = sx(x);
    if (cx < f.x0 || cx > f.x1) continue;
    const m = s("path", { d: `M${cx},${f.y1 - 1}l-5,-8h10z`, class: `bsx-mark bsx-${key}` });
    m.append(s("title", {}, `${name} = ${fmt(x, 6)}`));
    svg.append(m);
  }
}

function drawArrows(svg, d, r, j, xr, uid, onPick, drawn) {
  svg.replaceChildren();
  const f = frame(svg, { l: 74, r: 14, t: 26, b: 38 });
  const sx = (x) => f.x0 + ((x - xr[0]) / (xr[1] - xr[0])) * f.pw;
  const yTop = f.y0 + 16;
  const yBot = f.y1 - 14;
  const defs = s("defs");
  const mk = s("marker", {
    id: `${uid}-arrow`,
    viewBox: "0 0 10 10",
    refX: 9,
    refY: 5,
    markerWidth: 7,
    markerHeight: 7,
    orient: "auto-start-reverse",
  });
  mk.append(s("path", { d: "M0,0L10,5L0,10z", class: "bsx-arrowhead" }));
  defs.append(mk);
  svg.append(defs);
  const of =
    drawn.length < d.labels.length ? ` (${drawn.length} of ${d.labels.length} groups)` : "";
  title(svg, `each group: own estimate → BLUP${of}`);
  svg.append(
    s("text", { x: f.x0 - 8, y: yTop + 4, "text-anchor": "end", class: "bsx-tick" }, "own ȳⱼ"),
  );
  svg.append(
    s("text", { x: f.x0 - 8, y: yBot + 4, "text-anchor": "end", class: "bsx-tick" }, "BLUPⱼ"),
  );
  const mx = sx(r.mu);
  svg.append(s("line", { x1: mx, x2: mx, y1: f.y0, y2: f.y1, class: "bsx-mu" }));
  svg.append(s("text", { x: mx + 4, y: f.y0 + 6, class: "bsx-note" }, `μ = ${fmt(r.mu)}`));
  const weight = (i) => 1 / (r.se[i] * r.se[i]);
  const wmax = maxOf(r.se.map((x) => 1 / (x * x)));
  const rad = (i) => 2.5 + 5 * Math.sqrt(weight(i) / wmax);
  for (const i of withChosen(drawn, j)) {
    const g = s("g", { class: i === j ? "bsx-group bsx-chosen" : "bsx-group", "data-group": i });
    const x0 = sx(d.own[i]);
    const x1 = sx(r.blup[i]);
    const len = Math.hypot(x1 - x0, yBot - yTop);
    const shrink = (rad(i) + 1) / len;
    g.append(
      s("line", {
        x1: x0 + (x1 - x0) * shrink,
        y1: yTop + (yBot - yTop) * shrink,
        x2: x1 - (x1 - x0) * shrink,
        y2: yBot - (yBot - yTop) * shrink,
        class: "bsx-arrow",
        "marker-end": `url(#${uid}-arrow)`,
      }),
    );
    g.append(s("circle", { cx: x0, cy: yTop, r: rad(i), class: "bsx-dot bsx-lik" }));
    g.append(s("circle", { cx: x1, cy: yBot, r: rad(i), class: "bsx-dot bsx-post" }));
    g.append(
      s(
        "title",
        {},
        `${d.labels[i]}: own ${fmt(d.own[i], 6)} → BLUP ${fmt(r.blup[i], 6)} (B = ${fmt(r.B[i], 3)})`,
      ),
    );
    g.addEventListener("click", () => onPick(i));
    svg.append(g);
  }
  xAxis(svg, f, niceTicks(xr[0], xr[1], 6), sx, d.response);
}

function drawCurve(svg, d, r, j, mult, fittedValue, drawn) {
  svg.replaceChildren();
  const long = d.kind === "long";
  const f = frame(svg, { l: 44, r: 14, t: 26, b: 38 });
  const sy = (b) => f.y1 - b * f.ph;
  let sx;
  let xs;
  let curve;
  let fittedCurve;
  let gx;
  let ticks;
  let tickFmt = fmt;
  if (long) {
    const neff = d.n.map((n) => n * mult);
    const lo = Math.log10(Math.min(1, 0.5 * minOf(neff)));
    const hi = Math.log10(Math.max(100, 5 * maxOf(neff)));
    sx = (n) => f.x0 + ((Math.log10(n) - lo) / (hi - lo)) * f.pw;
    xs = Array.from({ length: 201 }, (_, i) => 10 ** (lo + ((hi - lo) * i) / 200));
    curve = (n) => 1 / (1 + n * r.value);
    fittedCurve = (n) => 1 / (1 + n * fittedValue);
    gx = neff;
    ticks = [];
    for (let e = Math.ceil(lo); e <= Math.floor(hi); e++) ticks.push(10 ** e);
    tickFmt = (t) => fmt(t);
    title(svg, "shrinkage B(n) = 1 / (1 + n·τ²/σ²)");
    xAxis(svg, f, ticks, sx, "group size n (× the multiplier), log scale", tickFmt);
  } else {
    const seff = r.se;
    const hi = 1.5 * maxOf(seff);
    sx = (x) => f.x0 + (x / hi) * f.pw;
    xs = Array.from({ length: 201 }, (_, i) => (hi * i) / 200);
    const b = (x, t) => (t > 0 ? (x * x) / (x * x + t * t) : 1);
    curve = (x) => b(x, r.tau);
    fittedCurve = (x) => b(x, fittedValue);
    gx = seff;
    ticks = niceTicks(0, hi, 5);
    title(svg, "shrinkage B(se) = se² / (se² + τ²)");
    xAxis(svg, f, ticks, sx, "standard error seⱼ (÷ √multiplier)");
  }
  for (const t of [0, 0.25, 0.5, 0.75, 1]) {
    svg.append(s("line", { x1: f.x0, x2: f.x1, y1: sy(t), y2: sy(t), class: "bsx-grid" }));
    svg.append(
      s("text", { x: f.x0 - 6, y: sy(t) + 4, "text-anchor": "end", class: "bsx-tick" }, fmt(t)),
    );
  }
  svg.append(
    s(
      "text",
      {
        x: 12,
        y: (f.y0 + f.y1) / 2,
        transform: `rotate(-90 12 ${(f.y0 + f.y1) / 2})`,
        "text-anchor": "middle",
        class: "bsx-label",
      },
      "Bⱼ",
    ),
  );
  const px = xs.map(sx);
  svg.append(
    s("path", {
      d: pathOf(
        px,
        xs.map((x) => sy(fittedCurve(x))),
      ),
      class: "bsx-fitted-curve",
    }),
  );
  svg.append(
    s("path", {
      d: pathOf(
        px,
        xs.map((x) => sy(curve(x))),
      ),
      class: "bsx-curve bsx-post",
      "data-curve": "B",
    }),
  );
  for (const i of withChosen(drawn, j)) {
    const c = s("circle", {
      cx: sx(gx[i]),
      cy: sy(r.B[i]),
      r: i === j ? 6 : 4,
      class: i === j ? "bsx-dot bsx-lik bsx-chosen" : "bsx-dot bsx-lik",
    });
    c.append(s("title", {}, `${d.labels[i]}: B = ${fmt(r.B[i], 4)}`));
    svg.append(c);
  }
  // the legend where the curves are not: top right for B(n) (falling), bottom right for B(se)
  const lx = f.x1 - 150;
  const ly = long ? f.y0 + 8 : f.y1 - 40;
  svg.append(s("line", { x1: lx, x2: lx + 22, y1: ly, y2: ly, class: "bsx-curve bsx-post" }));
  svg.append(s("text", { x: lx + 28, y: ly + 4, class: "bsx-note" }, "at this setting"));
  svg.append(
    s("line", { x1: lx, x2: lx + 22, y1: ly + 16, y2: ly + 16, class: "bsx-fitted-curve" }),
  );
  svg.append(s("text", { x: lx + 28, y: ly + 20, class: "bsx-note" }, "at the fit"));
}

// ------------------------------------------------------------------ the widget
function render({ model, el }) {
  const uid = `bsx${++instances}`;
  const data = model.get("data");
  const datasets = data.datasets;
  let k = Math.min(Math.max(model.get("dataset") || 0, 0), datasets.length - 1);
  let d = datasets[k];
  let g = gridOf(d);
  const fittedOf = (dd) => (dd.kind === "long" ? dd.ratio : dd.tau);
  const initial = d.kind === "long" ? model.get("ratio") : model.get("tau");
  let value = Number.isFinite(initial) && initial >= 0 ? initial : fittedOf(d);
  let mult =
    Number.isFinite(model.get("multiplier")) && model.get("multiplier") > 0
      ? model.get("multiplier")
      : 1;
  let j = Math.min(Math.max(model.get("group") || 0, 0), d.labels.length - 1);
  let r = null;
  let hasN = true; // summary data usually have no group sizes: no n column then
  let drawn = [];

  const root = h("div", { class: "bsx", role: "group", "aria-label": "shrinkage explorer" });
  const head = h("div", { class: "bsx-head" });
  const heading = h("div", { class: "bsx-heading" });
  head.append(heading);
  const modelBox = h("label", { class: "bsx-model" });
  const modelSel = h("select", { "aria-label": "model" });
  datasets.forEach((dd, i) =>
    modelSel.append(h("option", { value: i }, dd.name || `fit ${i + 1}`)),
  );
  modelBox.append(h("span", {}, "model "), modelSel);
  if (datasets.length > 1) head.append(modelBox);
  root.append(head);

  const controls = h("div", { class: "bsx-controls" });
  const ratioBox = h("div", { class: "bsx-ratio" });
  const ratioLabel = h("label", { for: `${uid}-ratio`, class: "bsx-control-label" });
  const ratioOut = h("output", { for: `${uid}-ratio`, class: "bsx-value", "aria-live": "polite" });
  const slider = h("input", {
    id: `${uid}-ratio`,
    type: "range",
    min: 0,
    step: 1,
    class: "bsx-slider",
  });
  const track = h("div", { class: "bsx-track" });
  const fitMark = h("div", { class: "bsx-fitmark", "aria-hidden": "true" }, "▲ fitted");
  track.append(slider, fitMark);
  const ends = h("div", { class: "bsx-ends", "aria-hidden": "true" });
  ends.append(h("span", {}, "0: complete pooling"), h("span", {}, "far above the fit: no pooling"));
  const reset = h("button", { type: "button", class: "bsx-reset" }, "reset to the fit");
  ratioBox.append(ratioLabel, ratioOut, track, ends, reset);

  const multBox = h("div", { class: "bsx-mult" });
  const multLabel = h("label", { for: `${uid}-mult`, class: "bsx-control-label" });
  const multOut = h("output", { for: `${uid}-mult`, class: "bsx-value" });
  const multSlider = h("input", {
    id: `${uid}-mult`,
    type: "range",
    min: MULT_MIN,
    max: MULT_MAX,
    step: 1,
    class: "bsx-slider",
  });
  const groupLabel = h(
    "label",
    { for: `${uid}-group`, class: "bsx-control-label" },
    "group to show",
  );
  const groupSel = h("select", { id: `${uid}-group` });
  multBox.append(multLabel, multOut, multSlider, groupLabel, groupSel);
  controls.append(ratioBox, multBox);
  root.append(controls);

  const status = h("p", { class: "bsx-status", role: "status", "aria-live": "polite" });
  const notes = h("p", { class: "bsx-notes" });
  root.append(status, notes);

  const panels = h("div", { class: "bsx-panels" });
  const mkPanel = (name) => {
    const fig = h("figure", { class: "bsx-panel" });
    const svg = s("svg", {
      viewBox: `0 0 ${W} ${H}`,
      role: "img",
      "aria-label": name,
      "data-panel": name,
    });
    fig.append(svg);
    panels.append(fig);
    return [fig, svg];
  };
  const [triFig, triSvg] = mkPanel("prior, likelihood and posterior");
  const legend = h("div", { class: "bsx-legend" });
  for (const [key, text] of [
    ["prior", "prior N(μ, τ²)"],
    ["lik", "likelihood N(ȳⱼ, seⱼ²)"],
    ["post", "posterior N(BLUPⱼ, (1 − Bⱼ)·seⱼ²)"],
  ]) {
    const item = h("span", { class: "bsx-legend-item" });
    item.append(h("span", { class: `bsx-swatch bsx-${key}` }), document.createTextNode(text));
    legend.append(item);
  }
  triFig.append(legend);
  const [, arrowSvg] = mkPanel("every group's shrinkage");
  const [, curveSvg] = mkPanel("shrinkage curve");
  root.append(panels);

  const tableWrap = h("div", { class: "bsx-table-wrap" });
  const table = h("table", { class: "bsx-table" });
  const thead = h("thead");
  const tbody = h("tbody");
  table.append(thead, tbody);
  const tableNote = h("p", { class: "bsx-notes" });
  tableWrap.append(table);
  root.append(tableWrap, tableNote);
  el.append(root);

  function xRange() {
    const lo = minOf(d.own);
    const hi = maxOf(d.own);
    const se1 = d.kind === "long" ? d.n.map((n) => d.sigma / Math.sqrt(n)) : d.se;
    const pad = Math.max(2.5 * maxOf(se1), 0.05 * (hi - lo), 1e-9);
    return [lo - pad, hi + pad];
  }
  function arrowRange() {
    const lo = minOf(d.own);
    const hi = maxOf(d.own);
    const se1 = d.kind === "long" ? d.n.map((n) => d.sigma / Math.sqrt(n)) : d.se;
    const pad = Math.max(0.06 * (hi - lo), 0.5 * minOf(se1), 1e-9);
    return [lo - pad, hi + pad];
  }

  function setupDataset() {
    g = gridOf(d);
    const long = d.kind === "long";
    slider.max = g.max;
    // the mark sits under the thumb's position at the fitted value (the left end on a boundary)
    fitMark.style.left = g.fitted > 0 ? `calc(8px + ${g.pA / g.max} * (100% - 16px))` : "0";
    fitMark.style.transform = g.fitted > 0 ? "translateX(-50%)" : "none";
    ratioLabel.textContent = long
      ? "variance ratio τ²/σ² (log scale; σ held at its fitted value)"
      : "between-group SD τ (log scale; summary data have no σ, so the control is τ itself)";
    slider.setAttribute(
      "aria-label",
      long
        ? "variance ratio tau squared over sigma squared, log scale"
        : "between-group standard deviation tau, log scale",
    );
    multLabel.textContent = long
      ? "group-size multiplier: nⱼ × m"
      : "precision multiplier: seⱼ ÷ √m";
    multSlider.setAttribute("aria-label", long ? "group size multiplier" : "precision multiplier");
    groupSel.replaceChildren(...d.labels.map((lab, i) => h("option", { value: i }, lab)));
    heading.replaceChildren(
      h("strong", {}, data.title || "Shrinkage explorer"),
      document.createTextNode(" "),
      h(
        "span",
        { class: "bsx-sub" },
        `${d.held ? d.formula : `${d.response} by ${d.group}`}: ${d.labels.length} groups, ` +
          `${d.method.toUpperCase()} fit, ` +
          (long
            ? `τ̂²/σ̂² = ${fmt(d.ratio)}, σ̂ = ${fmt(d.sigma)}, μ̂ = ${fmt(d.mu)}`
            : `summary data, τ̂ = ${fmt(d.tau)}, μ̂ = ${fmt(d.mu)}`) +
          (d.boundary ? " (boundary fit: τ̂ = 0)" : ""),
      ),
    );
    hasN = d.n.every((v) => v !== null);
    const cols = ["group", ...(hasN ? ["n"] : []), "own ȳⱼ", "seⱼ", "Bⱼ", "BLUPⱼ", "posterior SD"];
    const tr = h("tr");
    cols.forEach((c) => tr.append(h("th", { scope: "col" }, c)));
    thead.replaceChildren(tr);
    drawn = spreadSubset(d);
    const rows = d.labels.slice(0, MAX_ROWS);
    tableNote.textContent =
      d.labels.length > MAX_ROWS
        ? `The table shows the first ${MAX_ROWS} of ${d.labels.length} groups; choose any group above to see it in the panels.`
        : "";
    tbody.replaceChildren(
      ...rows.map((lab, i) => {
        const row = h("tr", { "data-group": i });
        row.append(h("th", { scope: "row" }, lab));
        for (let c = 1; c < cols.length; c++) row.append(h("td"));
        row.addEventListener("click", () => pick(i));
        return row;
      }),
    );
  }

  function describe() {
    const long = d.kind === "long";
    const name = long ? "τ²/σ²" : "τ";
    const atFit = value === fittedOf(d);
    let text = `${name} = ${fmt(value)}`;
    if (atFit) text += d.boundary ? " (the fitted value: a boundary fit)" : " (the fitted value)";
    if (long) text += `, τ = ${fmt(r.tau)}`;
    return text;
  }

  function update() {
    r = compute(d, value, mult);
    const long = d.kind === "long";
    const regime = regimeOf(r);
    slider.value = String(posOf(g, value));
    const desc = describe();
    ratioOut.textContent = desc;
    slider.setAttribute("aria-valuetext", desc);
    multSlider.value = String(Math.round(Math.log2(mult)));
    multOut.textContent = `m = ${fmt(mult)}`;
    multSlider.setAttribute("aria-valuetext", `multiplier ${fmt(mult)}`);
    groupSel.value = String(j);
    const bmin = minOf(r.B);
    const bmax = maxOf(r.B);
    status.dataset.regime = regime;
    if (regime === "complete") {
      status.textContent =
        "Complete pooling: τ = 0, so the prior is a point mass at μ and every BLUP equals μ (Bⱼ = 1).";
    } else if (regime === "none") {
      status.textContent =
        `No pooling: τ is far above the fit, so every group keeps more than 99% of its own ` +
        `estimate (Bⱼ ≤ ${fmt(bmax, 2)}).`;
    } else {
      const range =
        bmax - bmin <= 1e-12 * bmax
          ? `Bⱼ = ${fmt(bmin, 3)} for every group`
          : `Bⱼ runs from ${fmt(bmin, 3)} to ${fmt(bmax, 3)}`;
      status.textContent = `Partial pooling: each BLUP moves the fraction Bⱼ of the way from the group's own estimate ȳⱼ to μ; here ${range}.`;
    }
    notes.textContent =
      `μ = ${fmt(r.mu, 6)} is the GLS mean Σwⱼȳⱼ / Σwⱼ with wⱼ = 1/(seⱼ² + τ²), recomputed at each ` +
      `setting (at the fitted value it is the fit's μ̂ = ${fmt(d.mu, 6)}). ` +
      (long
        ? `seⱼ = σ/√(nⱼ·m) with σ = ${fmt(d.sigma)} held at its fitted value.`
        : "Summary data with known standard errors: there is no σ, so the control is τ itself.") +
      (d.held ? ` ${d.held}` : "");
    const xr = xRange();
    drawTriplot(triSvg, d, r, j, xr, uid);
    drawArrows(arrowSvg, d, r, j, arrowRange(), uid, pick, drawn);
    drawCurve(curveSvg, d, r, j, mult, fittedOf(d), drawn);
    [...tbody.children].forEach((row, i) => {
      const cells = row.children;
      const vals = [d.own[i], r.se[i], r.B[i], r.blup[i], r.postsd[i]];
      if (hasN) vals.unshift(d.n[i] * mult);
      vals.forEach((v, c) => {
        cells[c + 1].textContent = fmt(v, 5);
      });
      row.classList.toggle("bsx-chosen-row", i === j);
    });
  }

  // model.set fires this view's own change listeners at once (Backbone does so too): while the
  // traits are being written one by one, `follow` must not read the half-written set back.
  let committing = false;
  function commit() {
    committing = true;
    try {
      model.set("dataset", k);
      model.set("ratio", d.kind === "long" ? value : null);
      model.set("tau", r.tau);
      model.set("multiplier", mult);
      model.set("group", j);
      model.save_changes();
    } finally {
      committing = false;
    }
  }

  function setValue(v) {
    const x = Number(v);
    if (!Number.isFinite(x) || x < 0)
      throw new Error(`the control must be a finite number >= 0; got ${v}`);
    value = x;
    update();
    commit();
  }
  function pick(i) {
    j = i;
    update();
    commit();
  }
  function chooseDataset(i) {
    k = i;
    d = datasets[k];
    j = Math.min(j, d.labels.length - 1);
    value = fittedOf(d);
    setupDataset();
    modelSel.value = String(k);
    update();
    commit();
  }

  slider.addEventListener("input", () => setValue(valueAt(g, Number(slider.value))));
  multSlider.addEventListener("input", () => {
    mult = 2 ** Number(multSlider.value);
    update();
    commit();
  });
  groupSel.addEventListener("change", () => pick(Number(groupSel.value)));
  modelSel.addEventListener("change", () => chooseDataset(Number(modelSel.value)));
  reset.addEventListener("click", () => {
    value = fittedOf(d);
    mult = 1;
    update();
    commit();
  });

  // Python -> browser (anywidget): follow the traits when the kernel sets them.
  const follow = () => {
    if (committing) return;
    const kk = model.get("dataset");
    if (Number.isInteger(kk) && kk !== k && kk >= 0 && kk < datasets.length) {
      chooseDataset(kk);
      return;
    }
    const v = d.kind === "long" ? model.get("ratio") : model.get("tau");
    const m = model.get("multiplier");
    const gg = model.get("group");
    let changed = false;
    if (Number.isFinite(v) && v >= 0 && v !== value) {
      value = v;
      changed = true;
    }
    if (Number.isFinite(m) && m > 0 && m !== mult) {
      mult = m;
      changed = true;
    }
    if (Number.isInteger(gg) && gg >= 0 && gg < d.labels.length && gg !== j) {
      j = gg;
      changed = true;
    }
    if (changed) {
      update();
      commit(); // so that tau follows a ratio set from Python, and the reverse
    }
  };
  const events = [
    "change:ratio",
    "change:tau",
    "change:multiplier",
    "change:group",
    "change:dataset",
  ];
  for (const e of events) model.on(e, follow);

  const api = {
    setRatio(x) {
      if (d.kind !== "long") {
        throw new Error(
          "setRatio: summary data have no σ, so the control is τ itself; use setTau(t)",
        );
      }
      setValue(x);
      return api.state();
    },
    setTau(t) {
      const x = Number(t);
      setValue(d.kind === "long" ? (x * x) / (d.sigma * d.sigma) : x);
      return api.state();
    },
    setMultiplier(m) {
      const x = Number(m);
      if (!(Number.isFinite(x) && x > 0)) throw new Error(`setMultiplier: m must be > 0; got ${m}`);
      mult = x;
      update();
      commit();
      return api.state();
    },
    setGroup(which) {
      const i = typeof which === "number" ? which : d.labels.indexOf(String(which));
      if (!(i >= 0 && i < d.labels.length)) throw new Error(`setGroup: no group ${which}`);
      pick(i);
      return api.state();
    },
    setModel(which) {
      const i =
        typeof which === "number" ? which : datasets.findIndex((dd) => dd.name === String(which));
      if (!(i >= 0 && i < datasets.length)) throw new Error(`setModel: no model ${which}`);
      chooseDataset(i);
      return api.state();
    },
    reset() {
      reset.click();
      return api.state();
    },
    state() {
      return {
        model: d.name,
        kind: d.kind,
        ratio: d.kind === "long" ? value : null,
        fitted: fittedOf(d),
        tau: r.tau,
        mu: r.mu,
        multiplier: mult,
        regime: regimeOf(r),
        group: d.labels[j],
        groups: d.labels.map((label, i) => ({
          label,
          own: d.own[i],
          se: r.se[i],
          shrinkage: r.B[i],
          blup: r.blup[i],
          posterior_sd: r.postsd[i],
        })),
      };
    },
  };
  root.bayeshrink = api;
  if (typeof window !== "undefined") window.bayeshrink = api; // the last explorer shown

  setupDataset();
  modelSel.value = String(k);
  update();
  return () => {
    for (const e of events) model.off(e, follow);
    if (typeof window !== "undefined" && window.bayeshrink === api) delete window.bayeshrink;
  };
}

export default { render };

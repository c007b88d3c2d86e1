// Line charts drawn as SVG (no library): time on x, one line per series.

const NS = "http://www.w3.org/2000/svg";
const W = 600, H = 180, PAD = { left: 52, right: 12, top: 12, bottom: 26 };

function svg(tag, attrs = {}, text) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

function niceMax(v) {
  if (!(v > 0)) return 1;
  const step = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 2.5, 5, 10].map((m) => m * step).find((m) => m >= v);
}

const clock = (t) => new Date(t * 1000).toLocaleTimeString(undefined, { hour12: false });

// Draw series [{label, points: [[t, value|null], ...]}] into `figure` (replacing what was there).
// The figure gets data-points (points drawn) for tests and an aria-label summary for readers.
export function lineChart(figure, { title, unit, series }) {
  const all = series.flatMap((s) => s.points.filter(([, v]) => v !== null && v !== undefined));
  const times = series.flatMap((s) => s.points.map(([t]) => t));
  const t0 = Math.min(...times), t1 = Math.max(...times);
  const top = niceMax(Math.max(0, ...all.map(([, v]) => v)));
  const x = (t) => PAD.left + (t1 > t0 ? (t - t0) / (t1 - t0) : 0.5) * (W - PAD.left - PAD.right);
  const y = (v) => H - PAD.bottom - (v / top) * (H - PAD.top - PAD.bottom);
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", class: "chart" });
  root.append(svg("title", {}, title));
  for (const frac of [0, 0.5, 1]) {
    root.append(svg("line", { x1: PAD.left, x2: W - PAD.right, y1: y(top * frac), y2: y(top * frac), class: "grid" }));
    root.append(svg("text", { x: PAD.left - 6, y: y(top * frac) + 4, class: "axis", "text-anchor": "end" },
      `${+(top * frac).toPrecision(3)}`));
  }
  if (times.length) {
    root.append(svg("text", { x: PAD.left, y: H - 6, class: "axis" }, clock(t0)));
    root.append(svg("text", { x: W - PAD.right, y: H - 6, class: "axis", "text-anchor": "end" }, clock(t1)));
  }
  series.forEach((s, i) => {
    const pts = s.points.filter(([, v]) => v !== null && v !== undefined);
    if (pts.length === 1) root.append(svg("circle", { cx: x(pts[0][0]), cy: y(pts[0][1]), r: 3, class: `s${i}` }));
    else if (pts.length) root.append(svg("polyline", { points: pts.map(([t, v]) => `${x(t)},${y(v)}`).join(" "), class: `line s${i}` }));
  });
  const latest = series.map((s) => {
    const last = s.points.filter(([, v]) => v !== null && v !== undefined).at(-1);
    return `${s.label}: ${last ? `${+last[1].toPrecision(3)} ${unit}` : "no data"}`;
  }).join("; ");
  figure.replaceChildren(root, legend(series), caption(title, latest));
  figure.dataset.points = String(all.length);
  // The first series' largest value (tests read it: the first series is the chart's subject).
  figure.dataset.max = String(Math.max(0, ...series[0].points.map(([, v]) => v ?? 0)));
  figure.setAttribute("aria-label", `${title}. Latest: ${latest}`);
}

function legend(series) {
  const ul = document.createElement("ul");
  ul.className = "legend";
  series.forEach((s, i) => {
    const li = document.createElement("li");
    li.className = `s${i}`;
    li.textContent = s.label;
    ul.append(li);
  });
  return ul;
}

function caption(title, latest) {
  const el = document.createElement("figcaption");
  el.textContent = `${title} — latest ${latest}`;
  return el;
}

// The slot map as one bar of `slots` slots: each shard's runs of slots ([first, last]
// ranges) in that shard's colour (eight colours, repeating). Shard i is class `k${i % 8}`.
export function slotBar(figure, { slots, shards }) {
  const root = svg("svg", { viewBox: `0 0 ${slots} 24`, preserveAspectRatio: "none", role: "img", class: "slot-bar" });
  const summary = shards.map((s) => `${s.name}: ${s.slots} slots`).join("; ");
  root.append(svg("title", {}, `Slot map: ${summary}`));
  shards.forEach((s, i) => {
    for (const [first, last] of s.ranges ?? []) {
      root.append(svg("rect", { x: first, y: 0, width: last - first + 1, height: 24, class: `k${i % 8}` }));
    }
  });
  figure.replaceChildren(root);
  figure.setAttribute("aria-label", `Slot map of ${slots} slots. ${summary}`);
}

// Small SVG charts without dependencies: line, bars, control chart, histogram.
"use strict";

const SVGNS = "http://www.w3.org/2000/svg";
const W = 520, H = 220, PAD = 36;

function svgEl(name, attrs, text) {
  const e = document.createElementNS(SVGNS, name);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function frame(target, ylo, yhi, label) {
  const svg = svgEl("svg", {viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": label});
  svg.append(svgEl("line", {x1: PAD, y1: H - PAD, x2: W - 8, y2: H - PAD, class: "axis"}));
  svg.append(svgEl("line", {x1: PAD, y1: 8, x2: PAD, y2: H - PAD, class: "axis"}));
  svg.append(svgEl("text", {x: 2, y: 14, class: "tick"}, fmt(yhi)));
  svg.append(svgEl("text", {x: 2, y: H - PAD, class: "tick"}, fmt(ylo)));
  target.replaceChildren(svg);
  const y = (v) => H - PAD - (H - PAD - 8) * (yhi === ylo ? 0.5 : (v - ylo) / (yhi - ylo));
  return {svg, y};
}

function fmt(v) { return Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(3); }

function xs(n) { return (i) => PAD + (n <= 1 ? 0 : (W - PAD - 12) * i / (n - 1)); }

function lineChart(target, labels, values, label) {
  if (!values.length) { target.textContent = "no data"; return; }
  const lo = Math.min(...values), hi = Math.max(...values);
  const {svg, y} = frame(target, lo, hi, label);
  const x = xs(values.length);
  svg.append(svgEl("polyline", {class: "series",
    points: values.map((v, i) => `${x(i)},${y(v)}`).join(" ")}));
  values.forEach((v, i) => {
    const dot = svgEl("circle", {cx: x(i), cy: y(v), r: 3, class: "point"});
    dot.append(svgEl("title", {}, `${labels[i]}: ${fmt(v)}`));
    svg.append(dot);
  });
}

function barChart(target, labels, values, label) {
  if (!values.length) { target.textContent = "no data"; return; }
  const {svg, y} = frame(target, 0, Math.max(...values), label);
  const bw = (W - PAD - 12) / values.length;
  values.forEach((v, i) => {
    const bar = svgEl("rect", {x: PAD + i * bw + 2, y: y(v), width: Math.max(bw - 4, 1),
                               height: H - PAD - y(v), class: "bar"});
    bar.append(svgEl("title", {}, `${labels[i]}: ${v}`));
    svg.append(bar);
    if (bw > 70) svg.append(svgEl("text", {x: PAD + i * bw + 2, y: H - PAD + 14,
                                           class: "tick"}, labels[i].slice(0, 12)));
  });
}

function controlChart(target, chart) {
  const vals = chart.points.map((p) => p.value);
  const lo = Math.min(chart.lcl, ...vals), hi = Math.max(chart.ucl, ...vals);
  const {svg, y} = frame(target, lo, hi, "control chart");
  const x = xs(vals.length);
  for (const [v, cls] of [[chart.center, "center"], [chart.ucl, "limit"], [chart.lcl, "limit"]]) {
    svg.append(svgEl("line", {x1: PAD, x2: W - 8, y1: y(v), y2: y(v), class: cls}));
  }
  svg.append(svgEl("polyline", {class: "series",
    points: vals.map((v, i) => `${x(i)},${y(v)}`).join(" ")}));
  chart.points.forEach((p, i) => {
    const c = svgEl("circle", {cx: x(i), cy: y(p.value), r: p.rules.length ? 4 : 2.5,
                               class: p.rules.length ? "violation" : "point"});
    c.append(svgEl("title", {}, `${fmt(p.value)}` +
      (p.rules.length ? ` — Nelson rule ${p.rules.join(", ")}` : "")));
    svg.append(c);
  });
}

function histogram(target, bins, takt) {
  if (!bins.length) { target.textContent = "no data"; return; }
  const counts = bins.map((b) => b[1]);
  const x0 = bins[0][0], x1 = Math.max(bins[bins.length - 1][0] + 0.5, takt || 0);
  const {svg, y} = frame(target, 0, Math.max(...counts), "cycle-time histogram");
  const x = (s) => PAD + (W - PAD - 12) * (s - x0) / (x1 - x0);
  for (const [s, n] of bins) {
    svg.append(svgEl("rect", {x: x(s), y: y(n), width: Math.max(x(s + 0.5) - x(s) - 0.5, 1),
                              height: H - PAD - y(n), class: "bar"}));
  }
  if (takt) {
    svg.append(svgEl("line", {x1: x(takt), x2: x(takt), y1: 8, y2: H - PAD, class: "limit"}));
    svg.append(svgEl("text", {x: x(takt) - 40, y: 20, class: "tick"}, `takt ${takt} s`));
  }
  svg.append(svgEl("text", {x: PAD, y: H - 6, class: "tick"}, `${x0} s`));
  svg.append(svgEl("text", {x: W - 50, y: H - 6, class: "tick"}, `${x1} s`));
}

// Small SVG charts without dependencies: line, bars, control chart, histogram, with
// labelled axes (values and dates) and ranges that never collapse to a point.
"use strict";

const SVGNS = "http://www.w3.org/2000/svg";
const W = 520, H = 220, PAD = 44, BOTTOM = 30;

function svgEl(name, attrs, text) {
  const e = document.createElementNS(SVGNS, name);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function fmt(v) { return Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) :
  v.toFixed(2); }
function fmtPct(v) { return (100 * v).toFixed(1) + " %"; }
function fmtDay(iso) { return iso ? String(iso).slice(0, 10) : ""; }
function fmtMinute(iso) { return iso ? String(iso).slice(0, 16).replace("T", " ") : ""; }
function count(v) { return String(Math.round(v * 10) / 10); }

// A range with room: a flat series gets a band around it instead of a zero-height axis.
function span(lo, hi, minWidth) {
  if (hi - lo < minWidth) { const mid = (lo + hi) / 2; lo = mid - minWidth / 2; hi = mid + minWidth / 2; }
  const pad = (hi - lo) * 0.05;
  return [lo - pad, hi + pad];
}

// Axes, three value ticks (``fy`` formats them) and up to three x labels.
function frame(target, ylo, yhi, label, fy, xlabels) {
  const svg = svgEl("svg", {viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": label});
  svg.append(svgEl("line", {x1: PAD, y1: H - BOTTOM, x2: W - 8, y2: H - BOTTOM, class: "axis"}));
  svg.append(svgEl("line", {x1: PAD, y1: 8, x2: PAD, y2: H - BOTTOM, class: "axis"}));
  const y = (v) => H - BOTTOM - (H - BOTTOM - 8) * (v - ylo) / (yhi - ylo);
  for (const v of [ylo, (ylo + yhi) / 2, yhi]) {
    svg.append(svgEl("text", {x: 2, y: y(v) + 4, class: "tick y-tick"}, (fy || fmt)(v)));
    svg.append(svgEl("line", {x1: PAD, x2: W - 8, y1: y(v), y2: y(v), class: "grid-line"}));
  }
  const n = (xlabels || []).length;
  const picks = n > 2 ? [0, Math.floor((n - 1) / 2), n - 1] : [...Array(n).keys()];
  for (const i of picks) {
    const xpos = xs(n)(i);
    svg.append(svgEl("text", {x: Math.min(xpos, W - 70), y: H - 10, class: "tick x-tick"},
                     xlabels[i]));
  }
  target.replaceChildren(svg);
  return {svg, y};
}

function xs(n) { return (i) => PAD + (W - PAD - 12) * (n <= 1 ? 0.5 : i / (n - 1)); }

function note(target, text) {
  const p = document.createElement("p");
  p.className = "too-few";
  p.textContent = text;
  target.replaceChildren(p);
}

// Yield over days: y from a round share below the lowest value to 100 %.
function yieldChart(target, days, values, parts) {
  if (!values.length) { note(target, "no parts in this window"); return; }
  const lo = Math.max(0, Math.floor((Math.min(...values) - 0.02) * 20) / 20);
  const {svg, y} = frame(target, Math.min(lo, 0.9), 1, "first-pass yield by day", fmtPct,
                         days.map(fmtDay));
  const x = xs(values.length);
  svg.append(svgEl("polyline", {class: "series",
    points: values.map((v, i) => `${x(i)},${y(v)}`).join(" ")}));
  values.forEach((v, i) => {
    const dot = svgEl("circle", {cx: x(i), cy: y(v), r: 3, class: "point"});
    dot.append(svgEl("title", {}, `${fmtDay(days[i])}: ${fmtPct(v)} of ${parts[i]} parts`));
    svg.append(dot);
  });
}

function barChart(target, labels, values, label, links) {
  if (!values.length) { note(target, "no NOK in this window"); return; }
  const {svg, y} = frame(target, 0, Math.max(...values), label, count, []);
  const bw = (W - PAD - 12) / values.length;
  values.forEach((v, i) => {
    const bar = svgEl("rect", {x: PAD + i * bw + 2, y: y(v), width: Math.max(bw - 4, 1),
                               height: H - BOTTOM - y(v), class: "bar"});
    bar.append(svgEl("title", {}, `${labels[i]}: ${v}`));
    const a = links ? svgEl("a", {href: links[i]}) : null;
    if (a) { a.append(bar); svg.append(a); } else svg.append(bar);
    if (bw > 50) svg.append(svgEl("text", {x: PAD + i * bw + 2, y: H - 10, class: "tick"},
                                  labels[i].slice(0, Math.floor(bw / 6))));
  });
}

function controlChart(target, chart) {
  const vals = chart.points.map((p) => p.value);
  const [lo, hi] = span(Math.min(chart.lcl, ...vals), Math.max(chart.ucl, ...vals), 1e-6);
  const {svg, y} = frame(target, lo, hi, "control chart", fmt,
                         chart.points.map((p) => fmtMinute(p.time)));
  const x = xs(vals.length);
  for (const [v, cls, name] of [[chart.center, "center", "CL"], [chart.ucl, "limit", "UCL"],
                                [chart.lcl, "limit", "LCL"]]) {
    svg.append(svgEl("line", {x1: PAD, x2: W - 8, y1: y(v), y2: y(v), class: cls}));
    svg.append(svgEl("text", {x: W - 40, y: y(v) - 2, class: "tick"}, name));
  }
  svg.append(svgEl("polyline", {class: "series",
    points: vals.map((v, i) => `${x(i)},${y(v)}`).join(" ")}));
  chart.points.forEach((p, i) => {
    const c = svgEl("circle", {cx: x(i), cy: y(p.value), r: p.rules.length ? 4 : 2.5,
                               class: p.rules.length ? "violation" : "point"});
    c.append(svgEl("title", {}, `${fmtMinute(p.time)} ${fmt(p.value)}` +
      (p.rules.length ? ` — Nelson rule ${p.rules.join(", ")}` : "")));
    svg.append(c);
  });
}

// One station's cycle times in 0.5 s bins, from 0 s (or near the fastest) past takt.
function histogram(target, cycle) {
  const bins = cycle.bins, takt = cycle.takt_s;
  if (!bins.length) { note(target, "no cycles in this window"); return; }
  const counts = bins.map((b) => b[1]);
  const x0 = Math.floor(bins[0][0]);
  const x1 = Math.ceil(Math.max(bins[bins.length - 1][0] + 0.5, (takt || 0) * 1.05));
  const {svg, y} = frame(target, 0, Math.max(...counts), `${cycle.station_id} cycle times`,
                         count, [`${x0} s`, `${((x0 + x1) / 2).toFixed(0)} s`,
                                               `${x1} s`]);
  const x = (s) => PAD + (W - PAD - 12) * (s - x0) / (x1 - x0);
  for (const [s, n] of bins) {
    svg.append(svgEl("rect", {x: x(s), y: y(n), width: Math.max(x(s + 0.5) - x(s) - 0.5, 1),
                              height: H - BOTTOM - y(n), class: "bar"}));
  }
  if (takt) {
    svg.append(svgEl("line", {x1: x(takt), x2: x(takt), y1: 8, y2: H - BOTTOM, class: "limit"}));
    svg.append(svgEl("text", {x: x(takt) - 46, y: 20, class: "tick"}, `takt ${takt} s`));
  }
}

// Yield dashboard: yield trend, NOK Pareto, capability and a control chart, every
// station's cycle-time histogram. Small samples are shown with their n and called "too few
// to judge" below the minimums (see the note on the page), never as a refusal.
"use strict";

const MIN_CAPABILITY_VALUES = 50;
const MIN_CHART_POINTS = 25;

let latest = 0;  // only the newest request draws: an older, slower answer is dropped
let chosen = null;  // the capability row whose chart is shown

function addOptions(sel, values) {
  for (const v of values) if (v) sel.append(new Option(v, v));
}

async function options() {
  const [st, task, pol] = await Promise.all(["station", "task", "policy"].map(
    (by) => api(`/api/yield?days=3660&by=${by}`)));
  if (st.ok) addOptions(document.getElementById("station"), st.data.map((r) => r.station_id));
  if (task.ok) addOptions(document.getElementById("task"), task.data.map((r) => r.task));
  if (pol.ok) addOptions(document.getElementById("policy"),
                         pol.data.map((r) => r.policy_version));
}

function value(id) { return document.getElementById(id).value; }

// The window and station for every query; task and policy narrow the yield queries.
function query() {
  const q = new URLSearchParams();
  if (value("start") && value("end")) {
    q.set("start", value("start") + "T00:00:00Z");
    q.set("end", value("end") + "T00:00:00Z");
  } else q.set("days", value("days") || "7");
  if (value("station")) q.set("station", value("station"));
  return q;
}

function yieldQuery(by) {
  const q = query();
  q.set("by", by);
  if (value("task")) q.set("task", value("task"));
  if (value("policy")) q.set("policy", value("policy"));
  return q;
}

function capabilityRows(spc) {
  const body = document.querySelector("#capability tbody");
  body.replaceChildren(...spc.map((r) => {
    const c = r.ok_only, few = c.n < MIN_CAPABILITY_VALUES;
    const cells = [r.station_id, `${r.side} ${r.position}`, c.n,
      c.mean === null ? "—" : fmt(c.mean), c.sd === null ? "—" : fmt(c.sd)];
    const tr = row(few ? cells.concat([`too few to judge (n < ${MIN_CAPABILITY_VALUES})`, ""])
                       : cells.concat([fmt(c.cp), fmt(c.cpk)]),
                   `${r.station_id}/${r.side}/${r.position}`);
    if (few) { tr.lastChild.remove(); tr.lastChild.colSpan = 2; tr.classList.add("few"); }
    tr.onclick = () => { chosen = r; drawChart(++latest); };
    return tr;
  }));
}

async function drawChart(mine) {
  const target = document.getElementById("spc-chart");
  const label = document.getElementById("spc-label");
  if (!chosen) { note(target, "no fastener values in this window"); label.textContent = ""; return; }
  const q = query();
  q.set("station", chosen.station_id);
  q.set("side", chosen.side);
  q.set("position", chosen.position);
  const res = await api(`/api/spc/chart?${q}`, {quiet: true});
  if (mine !== latest) return;
  const n = res.ok ? res.data.points.length : chosen.all.n;
  label.textContent = `${chosen.station_id} ${chosen.side} ${chosen.position} torque, n = ${n}`;
  if (!res.ok || n < MIN_CHART_POINTS) {
    note(target, `too few to judge: ${n} values; a control chart needs ${MIN_CHART_POINTS}`);
    return;
  }
  controlChart(target, res.data);
}

function cycleCharts(rows) {
  const box = document.getElementById("cycle-charts");
  box.replaceChildren(...rows.map((c) => {
    const card = document.createElement("figure");
    card.className = "small";
    card.dataset.station = c.station_id;
    const cap = document.createElement("figcaption");
    cap.textContent = `${c.station_id} · n = ${c.jobs}` + (c.p50_s === null ? "" :
      ` · p50 ${c.p50_s.toFixed(1)} s · p95 ${c.p95_s.toFixed(1)} s`) +
      (c.over_takt === null ? "" : ` · ${pct(c.over_takt)} at or over takt`);
    const plot = document.createElement("div");
    card.append(cap, plot);
    histogram(plot, c);
    return card;
  }));
  if (!rows.length) note(box, "no cycles in this window");
}

async function show() {
  const mine = ++latest;
  const q = query();
  const [trend, byStation, pareto, cycle, spc] = await Promise.all([
    api(`/api/yield?${yieldQuery("day")}`), api(`/api/yield?${yieldQuery("station")}`),
    api(`/api/pareto?${q}`), api(`/api/cycle-time?${q}`), api(`/api/spc?${q}`)]);
  if (mine !== latest) return;
  document.getElementById("scope").textContent = `window: ${q.has("start") ?
    value("start") + " to " + value("end") : "last " + q.get("days") + " days"}` +
    (value("station") ? ` · station ${value("station")}` : "") +
    (value("task") ? ` · task ${value("task")} (yield)` : "") +
    (value("policy") ? ` · policy ${value("policy")} (yield)` : "");
  if (trend.ok) {
    const parts = trend.data.reduce((n, r) => n + r.parts, 0);
    document.getElementById("yield-n").textContent = `n = ${parts} parts`;
    yieldChart(document.getElementById("yield-chart"), trend.data.map((r) => r.day),
               trend.data.map((r) => r.first_pass_yield), trend.data.map((r) => r.parts));
  }
  if (byStation.ok) document.querySelector("#yield-table tbody").replaceChildren(
    ...byStation.data.map((r) => row([r.station_id, r.parts, pct(r.first_pass_yield),
                                      pct(r.final_yield)], r.station_id)));
  if (pareto.ok) barChart(document.getElementById("pareto-chart"),
    pareto.data.map((r) => r.name), pareto.data.map((r) => r.count), "Pareto",
    pareto.data.map(() => "/part?nok=1" + (value("station") ?
      "&station=" + encodeURIComponent(value("station")) : "")));
  if (cycle.ok) cycleCharts(cycle.data);
  if (spc.ok) {
    capabilityRows(spc.data);
    chosen = spc.data.reduce((best, r) => !best || r.ok_only.n > best.ok_only.n ? r : best, null);
    await drawChart(mine);
  }
}

document.getElementById("filters").addEventListener("submit", (ev) => { ev.preventDefault(); show(); });
options().then(show);

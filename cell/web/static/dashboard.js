// Yield dashboard: yield trend, NOK Pareto, a torque control chart, cycle-time histogram.
"use strict";

async function stations() {
  const res = await api("/api/yield?days=3660&by=station");
  if (!res.ok) return;
  const sel = document.getElementById("station");
  for (const r of res.data) sel.append(new Option(r.station_id, r.station_id));
}

let latest = 0;  // only the newest request draws: an older, slower answer is dropped

async function show() {
  const mine = ++latest;
  const st = document.getElementById("station").value;
  const days = document.getElementById("days").value || 7;
  const q = `days=${encodeURIComponent(days)}` + (st ? `&station=${encodeURIComponent(st)}` : "");
  const [trend, byStation, pareto, cycle, spc] = await Promise.all([
    api(`/api/yield?${q}&by=day`), api(`/api/yield?${q}&by=station`),
    api(`/api/pareto?${q}`), api(`/api/cycle-time?${q}`), api(`/api/spc?${q}`)]);
  if (mine !== latest) return;
  if (trend.ok) lineChart(document.getElementById("yield-chart"),
    trend.data.map((r) => r.day), trend.data.map((r) => r.first_pass_yield), "yield trend");
  if (byStation.ok) document.querySelector("#yield-table tbody").replaceChildren(
    ...byStation.data.map((r) => row([r.station_id, r.parts, pct(r.first_pass_yield),
                                      pct(r.final_yield)], r.station_id)));
  if (pareto.ok) barChart(document.getElementById("pareto-chart"),
    pareto.data.map((r) => r.name), pareto.data.map((r) => r.count), "Pareto");
  if (cycle.ok && cycle.data.length) histogram(document.getElementById("cycle-chart"),
    cycle.data[0].bins, cycle.data[0].takt_s);
  if (spc.ok && spc.data.length) {
    const first = spc.data[0];
    document.getElementById("spc-label").textContent =
      `${first.station_id} ${first.side} ${first.position}: Cpk ${fmt(first.ok_only.cpk || 0)}`;
    const chart = await api(`/api/spc/chart?${q.replace(/station=[^&]*/, "")}` +
      `&station=${first.station_id}&side=${first.side}&position=${first.position}`);
    if (chart.ok && mine === latest) controlChart(document.getElementById("spc-chart"), chart.data);
  }
}

document.getElementById("filters").addEventListener("submit", (ev) => { ev.preventDefault(); show(); });
stations().then(show);

// Part page: one part's jobs with a torque-angle plot per fastener against its window,
// and the recent NOK parts. Reached from alerts, the Pareto and the live tiles through
// /part?id=PART, or /part?nok=1&station=ST (the NOK list of a station).
"use strict";

const params = new URLSearchParams(location.search);

function partLink(id) {
  const a = document.createElement("a");
  a.href = "/part?id=" + encodeURIComponent(id);
  a.textContent = id;
  return a;
}

// One fastener: the curve (angle -> torque), the window box, the final point.
function tracePlot(f) {
  const w = 260, h = 170, pad = 34;
  const angles = f.angle.concat([f.angle_deg, f.angle_max_deg * 1.1, 0]);
  const torques = f.torque.concat([f.torque_nm, f.torque_max_nm * 1.15, 0]);
  const xmax = Math.max(...angles), ymax = Math.max(...torques);
  const x = (a) => pad + (w - pad - 8) * a / xmax;
  const y = (t) => h - pad - (h - pad - 8) * t / ymax;
  const svg = svgEl("svg", {viewBox: `0 0 ${w} ${h}`, class: "trace", role: "img",
    "aria-label": `${f.side} ${f.position} torque over angle`});
  svg.append(svgEl("rect", {x: x(f.angle_min_deg), y: y(f.torque_max_nm),
    width: x(f.angle_max_deg) - x(f.angle_min_deg),
    height: y(f.torque_min_nm) - y(f.torque_max_nm), class: "window"}));
  svg.append(svgEl("line", {x1: pad, y1: h - pad, x2: w - 8, y2: h - pad, class: "axis"}));
  svg.append(svgEl("line", {x1: pad, y1: 8, x2: pad, y2: h - pad, class: "axis"}));
  svg.append(svgEl("text", {x: w - 60, y: h - pad + 14, class: "tick"}, `${xmax.toFixed(0)}°`));
  svg.append(svgEl("text", {x: pad + 2, y: h - pad + 14, class: "tick"}, "0°"));
  svg.append(svgEl("text", {x: 2, y: 14, class: "tick"}, `${ymax.toFixed(1)} Nm`));
  svg.append(svgEl("text", {x: 2, y: h - pad, class: "tick"}, "0"));
  svg.append(svgEl("text", {x: pad, y: h - 4, class: "tick"}, "angle °, torque Nm"));
  if (f.angle.length) {
    svg.append(svgEl("polyline", {class: "series curve",
      points: f.angle.map((a, i) => `${x(a)},${y(f.torque[i])}`).join(" ")}));
  }
  const end = svgEl("circle", {cx: x(f.angle_deg), cy: y(f.torque_nm), r: 4,
                               class: f.ok ? "point" : "violation"});
  end.append(svgEl("title", {}, `${f.torque_nm.toFixed(2)} Nm at ${f.angle_deg.toFixed(0)}°`));
  svg.append(end);
  const fig = document.createElement("figure");
  fig.className = "trace-fig " + (f.ok ? "ok" : "nok");
  const cap = document.createElement("figcaption");
  cap.textContent = `${f.side} ${f.position} · ${f.ok ? "OK" : "NOK " + f.error_code} · ` +
    `${f.torque_nm.toFixed(2)} Nm (${f.torque_min_nm}–${f.torque_max_nm}) · ` +
    `${f.angle_deg.toFixed(0)}° (${f.angle_min_deg}–${f.angle_max_deg})` +
    (f.angle.length ? "" : " · no curve stored");
  fig.append(svg, cap);
  return fig;
}

async function plots(card, job) {
  const res = await api(`/api/jobs/${job.job_id}/traces`);
  if (!res.ok || !res.data.fasteners.length) return;
  const box = document.createElement("div");
  box.className = "traces";
  box.append(...res.data.fasteners.map(tracePlot));
  card.append(box);
}

function jobCard(j) {
  const card = document.createElement("div");
  card.className = "card job " + (j.ok ? "ok" : "nok");
  card.dataset.job = j.job_id;
  const h = document.createElement("h2");
  h.textContent = `${j.station_id} · ${j.ok ? "OK" : "NOK " + j.error_name} · ` +
    `${fmtTime(j.started_at)} · ${(j.cycle_time_ms / 1000).toFixed(1)} s · ` +
    `robot ${j.robot_id || "—"} · ${j.policy_version || ""}` + (j.rework ? ` · ${j.rework}` : "");
  card.append(h);
  if (j.episode) {
    const e = j.episode;
    card.append(row([`episode ${e.path}`, `${e.frames} ticks · ${(e.bytes / 1e6).toFixed(1)} MB` +
                     (e.pruned ? " · pruned" : "") + (j.rework ? ` · labelled ${j.rework}` : "")]));
  }
  for (const a of j.alerts || []) {
    card.append(row([`alert ${a.id}: ${a.message}`, a.cleared_by ? "cleared by " + a.cleared_by :
                     "open"]));
  }
  if (j.fasteners.length) {
    const t = document.createElement("table");
    t.append(row(["side", "pos", "torque Nm", "angle °", "status"], null, "th"));
    for (const f of j.fasteners) t.append(row([f.side, f.position, f.torque_nm.toFixed(2),
        f.angle_deg.toFixed(0), f.ok ? "OK" : "NOK " + f.error_code]));
    card.append(t);
  }
  return card;
}

async function lookUp(id) {
  const out = document.getElementById("part");
  out.replaceChildren();
  const res = await api("/api/parts/" + encodeURIComponent(id));
  if (!res.ok) return;
  say(`part ${res.data.part_id}: ${res.data.jobs.length} jobs, ${res.data.state}` +
      (res.data.route ? ` · route ${res.data.route.join(" → ")}` : ""), "ok");
  for (const j of res.data.jobs) {
    const card = jobCard(j);
    out.append(card);
    plots(card, j);
  }
}

async function nokList() {
  const station = params.get("station");
  const q = new URLSearchParams({nok: "true", since: params.get("since") || "7d", limit: "50"});
  if (station) q.set("station", station);
  document.getElementById("nok-scope").textContent =
    `${station ? "at " + station : "all stations"}, last ${q.get("since")}`;
  const res = await api("/api/parts?" + q);
  if (!res.ok) return;
  document.querySelector("#nok-list tbody").replaceChildren(...res.data.map((p) => {
    const tr = row(["", fmtTime(p.last_seen), (p.stations || []).join(" → "), p.nok_jobs,
                    p.state], p.part_id);
    tr.firstChild.append(partLink(p.part_id));
    return tr;
  }));
}

document.getElementById("part-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const id = document.getElementById("part-id").value;
  history.replaceState(null, "", "/part?id=" + encodeURIComponent(id));
  lookUp(id);
});
if (params.get("id")) {
  document.getElementById("part-id").value = params.get("id");
  lookUp(params.get("id"));
}
nokList();

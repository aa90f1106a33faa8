// The line now: one tile per station, redrawn from the server's event stream
// (/api/live/events) whenever the line changes, without reloading the page. A new alert
// plays a tone and shows a notification once the user has allowed them (browsers only
// play sound after a click on the page).
"use strict";

const STATE_CLASS = {execute: "run", starting: "run", completing: "run", complete: "run",
  idle: "idle", resetting: "idle", held: "held", holding: "held", unholding: "held",
  suspended: "held", suspending: "held", stopped: "off", aborted: "held", unknown: "off"};
let line = null;        // the last snapshot
let receivedAt = 0;     // when it came (ms, this browser's clock)
let seenAlerts = null;  // alert ids already shown: a new one rings
let sound = false;
const fresh = new Map(); // alert id -> when it first appeared (ms): flashed for a while

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function duration(s) {
  if (s === null || s === undefined) return "—";
  s = Math.max(0, Math.round(s));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

function since(epoch) { return epoch ? Date.now() / 1000 - epoch : null; }

function jobBlock(t) {
  const box = el("div", "job");
  if (!t.job) { box.append(el("span", "muted", "no job running")); return box; }
  const ageS = (Date.now() - receivedAt) / 1000;
  const elapsed = t.job.elapsed_s + ageS * t.scale;
  box.append(el("span", "", `job ${t.job.job_seq} · part `));
  const a = el("a", "part-link", t.job.part_id || "—");
  if (t.job.part_id) a.href = "/part?id=" + encodeURIComponent(t.job.part_id);
  box.append(a);
  const bar = el("div", "takt");
  const fill = el("div", elapsed > t.job.takt_s ? "fill over" : "fill");
  fill.style.width = Math.min(100, 100 * elapsed / t.job.takt_s).toFixed(1) + "%";
  bar.append(fill);
  box.append(bar, el("span", "elapsed", `${elapsed.toFixed(1)} s of takt ${t.job.takt_s} s`));
  return box;
}

function resultsBlock(t) {
  const box = el("div", "results");
  for (const r of t.results) {
    const chip = el("a", "chip " + (r.ok ? "ok" : "nok"), r.ok ? "OK" : "NOK");
    chip.title = `job ${r.job_seq} · ${r.part_id || "no part id"} · ${r.error_name} · ` +
      `${r.cycle_time_s.toFixed(1)} s`;
    if (r.part_id) chip.href = "/part?id=" + encodeURIComponent(r.part_id);
    box.append(chip);
  }
  if (!t.results.length) box.append(el("span", "muted", "no results yet"));
  return box;
}

function alertsBlock(t) {
  const list = el("ul", "alerts");
  for (const a of t.alerts) {
    const li = el("li", "alert " + a.kind);
    if (Date.now() - (fresh.get(a.id) || 0) < 10000) li.classList.add("new");
    li.dataset.alert = a.id;
    const age = a.age_s + (Date.now() - receivedAt) / 1000;
    li.append(el("strong", "", a.kind.replace("_", " ")), el("span", "", " " + a.message + " "),
              el("span", "age", duration(age) + (a.acknowledged_by ? " · seen by " +
                 a.acknowledged_by : " · waiting for a technician")));
    if (a.part_id) {
      const link = el("a", "", " part");
      link.href = "/part?id=" + encodeURIComponent(a.part_id);
      li.append(link);
    }
    list.append(li);
  }
  return list;
}

function tile(t) {
  const card = el("article", "tile " + (t.reporting ? STATE_CLASS[t.state] || "idle" : "off"));
  card.dataset.station = t.station_id;
  const head = el("header");
  head.append(el("h2", "", t.station_id + (t.name ? " · " + t.name : "")),
              el("span", "state", t.state));
  if (!t.reporting) head.lastChild.title = "the last state on record";
  card.append(head, el("p", "reason", t.reason + (t.since ? ` (${duration(since(t.since))})` : "")));
  if (!t.reporting) {
    card.append(el("p", "warn", "no orchestrator reports this station: last state on record"));
  }
  const facts = el("dl", "facts");
  const robot = t.robot_id ? `${t.robot_id} · ${t.robot_online === null ? "broker unknown" :
    t.robot_online ? "worker online" : "worker offline"}` : "no robot assigned";
  const plc = t.plc_connected === null ? "unknown" : t.plc_connected ?
    `connected · heartbeat ${duration(t.plc_heartbeat_age_s)} ago` : "disconnected";
  for (const [k, v, cls] of [["robot", robot, t.robot_online === false ? "bad" : ""],
                             ["PLC", plc, t.plc_connected === false ? "bad" : ""]]) {
    facts.append(el("dt", "", k), el("dd", cls + " " + k.toLowerCase(), v));
  }
  card.append(facts, jobBlock(t), resultsBlock(t), alertsBlock(t));
  return card;
}

function draw() {
  if (!line) return;
  document.getElementById("tiles").replaceChildren(...line.stations.map(tile));
  const held = line.stations.filter((t) => t.reporting && STATE_CLASS[t.state] === "held").length;
  const waiting = line.stations.reduce((n, t) => n + t.alerts.filter(
    (a) => !a.acknowledged_by).length, 0);
  document.getElementById("summary").textContent =
    `${line.stations.length} stations · ${held} held · ${waiting} alerts waiting for a technician`;
}

function ring(alert, station) {
  fresh.set(alert.id, Date.now());
  draw();
  if (!sound) return;
  try {
    const ctx = new AudioContext();
    const osc = ctx.createOscillator();
    osc.frequency.value = 880;
    osc.connect(ctx.destination);
    osc.start();
    osc.stop(ctx.currentTime + 0.25);
  } catch (err) { /* no audio device */ }
  if ("Notification" in window && Notification.permission === "granted") {
    new Notification(`${station}: ${alert.kind.replace("_", " ")}`, {body: alert.message});
  }
}

function received(snapshot) {
  line = snapshot;
  receivedAt = Date.now();
  draw();
  const ids = new Set();
  for (const t of line.stations) for (const a of t.alerts) {
    ids.add(a.id);
    if (seenAlerts && !seenAlerts.has(a.id)) ring(a, t.station_id);
  }
  seenAlerts = ids;
}

function streamState(state) { document.getElementById("stream").dataset.state = state; }

async function follow() {
  const headers = {"Accept": "text/event-stream"};
  const token = sessionStorage.getItem("token");
  if (token) headers["Authorization"] = "Bearer " + token;
  for (;;) {
    try {
      const opened = Date.now();
      const res = await fetch("/api/live/events", {headers});
      if (res.status === 401) { say("sign in to see the line (this server needs a token)"); return; }
      if (!res.ok || !res.body) throw new Error(`answer ${res.status}`);
      streamState("open");
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      for (;;) {
        const {value, done} = await reader.read();
        if (done) break;
        buf += value;
        let cut;
        while ((cut = buf.indexOf("\n\n")) >= 0) {
          const event = buf.slice(0, cut);
          buf = buf.slice(cut + 2);
          const data = event.split("\n").filter((l) => l.startsWith("data: "))
            .map((l) => l.slice(6)).join("\n");
          if (data) received(JSON.parse(data));
        }
      }
      // The server ends each stream after a while: follow on at once (after a pause
      // only if it ended at once, so a broken proxy cannot make this spin).
      if (Date.now() - opened > 2000) continue;
    } catch (err) {
      streamState("lost");
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

document.getElementById("notify").addEventListener("click", async () => {
  sound = true;
  if ("Notification" in window && Notification.permission === "default") {
    await Notification.requestPermission();
  }
  document.getElementById("notify").textContent = "Sound on";
});
setInterval(draw, 1000);  // elapsed times and ages move between events
follow();

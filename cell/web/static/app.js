// Shared page helpers: calls to the JSON API with the signed-in user's token, messages.
"use strict";

function say(text, kind) {
  const m = document.getElementById("message");
  m.textContent = text;
  m.className = "message " + (kind || "error");
  m.hidden = false;
}

async function api(path, opts = {}) {
  const headers = {"Accept": "application/json"};
  const token = sessionStorage.getItem("token");
  if (token) headers["Authorization"] = "Bearer " + token;
  const init = {method: opts.method || "GET", headers};
  if (opts.body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(opts.body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (err) {
    say("the server cannot be reached: " + err);
    return {ok: false, status: 0, data: null};
  }
  let data = null;
  try { data = await res.json(); } catch (err) { data = null; }
  if (!res.ok && !opts.quiet) {  // quiet: the caller shows the refusal where it belongs
    const why = data && data.error ? data.error : res.statusText;
    say(`refused (${res.status}): ${why}`);
  }
  return {ok: res.ok, status: res.status, data};
}

function row(cells, id, tag = "td") {
  const tr = document.createElement("tr");
  if (id) tr.dataset.id = id;
  for (const c of cells) {
    const td = document.createElement(tag);
    td.textContent = c === null || c === undefined ? "" : String(c);
    tr.append(td);
  }
  return tr;
}

function fmtTime(iso) {
  return iso ? new Date(iso).toISOString().slice(0, 16).replace("T", " ") : "";
}

function pct(x) { return x === null || x === undefined ? "—" : (100 * x).toFixed(2) + " %"; }

(function signedIn() {
  const user = sessionStorage.getItem("user");
  const who = document.getElementById("who");
  if (user) {
    who.textContent = user;
    document.getElementById("signin").hidden = true;
    const out = document.getElementById("signout");
    out.hidden = false;
    out.onclick = () => { sessionStorage.clear(); location.href = "/login"; };
  }
})();

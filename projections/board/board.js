// scenelog review board: plain DOM, no build step, nothing from the internet.
// Every value from the store is put in the page with textContent (never as HTML).
"use strict";

const TYPES = ["appended", "conformed", "reverted", "derived"];
const params = new URLSearchParams(location.search);
const project = document.querySelector('meta[name="scenelog-project"]').content;
const api = `/v1/projects/${encodeURIComponent(project)}`;
const state = { episode: params.get("episode"), selected: params.get("batch"), rows: [] };
let refreshTimer = null;

const $ = (sel) => document.querySelector(sel);
function el(tag, text, attrs) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  return node;
}
const v = (n) => (n === null || n === undefined ? "-" : `v${n}`);
const shortTime = (at) => at.slice(0, 19).replace("T", " ");

async function getJSON(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || `${response.status} ${path}`);
  return body;
}
function showError(error) {
  const p = $("#error");
  p.textContent = error ? String(error.message || error) : "";
  p.hidden = !error;
}

async function loadEpisodes() {
  const all = await getJSON(`${api}/batches`);
  const episodes = [...new Set(all.map((s) => s.batch_id.slice(0, 6)))].sort();
  if (!state.episode || !episodes.includes(state.episode)) state.episode = episodes[0] || null;
  const select = $("#episode");
  select.replaceChildren(...episodes.map((ep) => el("option", ep, { value: ep })));
  if (state.episode) select.value = state.episode;
}

let generation = 0;
async function loadBatches() {
  const mine = ++generation; // a slower, older answer never overwrites a newer one
  const rows = state.episode ? await getJSON(`${api}/batches?episode=${state.episode}`) : [];
  if (mine !== generation) return;
  state.rows = rows;
  renderBatches();
}

function renderBatches() {
  const body = $("#batches tbody");
  body.replaceChildren(
    ...state.rows.map((s) => {
      const gate = s.fresh ? "fresh" : "blocked";
      const tr = el("tr", null, { id: `row-${s.batch_id}`, "data-batch": s.batch_id });
      tr.className = (s.fresh ? "fresh" : "blocked") + (s.batch_id === state.selected ? " selected" : "");
      tr.append(
        el("td", s.batch_id, { class: "batch" }),
        el("td", v(s.active_version)),
        el("td", s.state || "-"),
        el("td", s.downstream || "-"),
        el("td", gate, { class: "gate", id: `gate-${s.batch_id}`, "data-gate": gate }),
        el("td", v(s.newest_version)),
        el("td", s.awaiting_review.map(v).join(", ") || "-"),
        el("td", s.seq),
      );
      tr.addEventListener("click", () => select(s.batch_id));
      return tr;
    }),
  );
  $("#empty").hidden = state.rows.length > 0;
}

async function select(batchId) {
  state.selected = batchId;
  renderBatches();
  await loadDetail();
}

async function loadDetail() {
  const batchId = state.selected;
  if (!batchId) return;
  const base = `${api}/batches/${encodeURIComponent(batchId)}`;
  const [manifest, history] = await Promise.all([getJSON(base), getJSON(`${base}/history`)]);
  if (state.selected !== batchId) return;
  $("#detail").hidden = false;
  $("#detail-title").textContent = `${batchId} · active ${v(manifest.active_version)} · ` +
    (manifest.fresh ? "fresh" : "blocked");
  $("#timeline tbody").replaceChildren(
    ...history.map((e) => {
      const tr = el("tr", null, { class: e.type });
      const move = e.type === "conformed" || e.type === "reverted"
        ? `${v(e.previous_active)} → v${e.version}` : "";
      tr.append(
        el("td", e.seq),
        el("td", shortTime(e.at)),
        el("td", e.actor),
        el("td", `${e.type} v${e.version}`),
        el("td", move),
        el("td", e.reason || "", { class: "reason" }),
      );
      return tr;
    }),
  );
  const versions = manifest.versions.map((entry) => entry.version);
  for (const [id, pick] of [["#diff-a", manifest.active_version], ["#diff-b", Math.max(...versions)]]) {
    const sel = $(id);
    const keep = sel.value && versions.includes(Number(sel.value)) ? sel.value : String(pick);
    sel.replaceChildren(...versions.map((n) => el("option", `v${n}`, { value: String(n) })));
    sel.value = keep;
  }
}

async function loadDiff(event) {
  if (event) event.preventDefault();
  const a = $("#diff-a").value;
  const b = $("#diff-b").value;
  const diff = await getJSON(
    `${api}/batches/${encodeURIComponent(state.selected)}/diff?a=${a}&b=${b}`);
  const dl = el("dl", null, { class: "changes" });
  for (const key of ["added", "removed", "moved"]) {
    dl.append(el("dt", key), el("dd", diff[key].join(", ") || "-"));
  }
  dl.append(el("dt", "changed"));
  if (diff.changed.length === 0) dl.append(el("dd", "-"));
  for (const change of diff.changed) dl.append(el("dd", `${change.shot_id}: ${change.keys.join(", ")}`));
  if (diff.other_keys && diff.other_keys.length) {
    dl.append(el("dt", "outside beats"), el("dd", diff.other_keys.join(", ")));
  }
  $("#diff").replaceChildren(el("p", `v${diff.a} → v${diff.b}`, { class: "muted" }), dl);
}

function scheduleRefresh(everything) {
  if (refreshTimer !== null && !everything) return;
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(async () => {
    refreshTimer = null;
    try {
      if (everything) await loadEpisodes();
      await loadBatches();
      await loadDetail();
      showError(null);
    } catch (error) {
      showError(error);
    }
  }, 0);
}

function connect() {
  const source = new EventSource(`${api}/events`);
  const live = $("#live");
  source.onopen = () => { live.textContent = "live"; live.className = "live on"; };
  source.onerror = () => { live.textContent = "reconnecting"; live.className = "live off"; };
  for (const type of TYPES) {
    source.addEventListener(type, (message) => {
      const event = JSON.parse(message.data);
      const known = state.rows.some((s) => s.batch_id === event.batch_id);
      if (event.episode === state.episode || !known) scheduleRefresh(!known);
    });
  }
  // The server dropped events for us (we were slow) or cannot resume: re-read it all.
  source.addEventListener("reset", () => scheduleRefresh(true));
}

async function main() {
  $("#project").textContent = project || "(none)";
  if (!project) {
    showError("no project: open this page as /?project=NAME (or start serve with --project)");
    return;
  }
  $("#episode").addEventListener("change", (e) => {
    state.episode = e.target.value;
    scheduleRefresh(false);
  });
  $("#diff-form").addEventListener("submit", (e) => loadDiff(e).catch(showError));
  connect();
  try {
    await loadEpisodes();
    await loadBatches();
    if (state.selected) await loadDetail();
  } catch (error) {
    showError(error);
  }
}

main();

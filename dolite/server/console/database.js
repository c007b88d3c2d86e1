// One database: its facts, check, versions (restore / fork), schema and load charts.

import { api, db } from "./api.js";
import { lineChart } from "./charts.js";
import { ago, bytes, h, lag, say, when } from "./dom.js";

const SHOWN_VERSIONS = 50;
const REFRESH_MS = 2000;
const FACTS_EVERY = 5;  // refresh the facts and versions every 5th chart refresh
const quote = (name) => `"${name.replaceAll('"', '""')}"`;

// Ask in the page's <dialog>; resolve with true (or the typed name, with `field`) or null.
function confirmAction(text, field) {
  const dialog = document.getElementById("confirm");
  const input = document.getElementById("confirm-input");
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-field").hidden = field === undefined;
  input.value = field ?? "";
  input.required = field !== undefined;
  dialog.returnValue = "";
  dialog.showModal();
  if (field !== undefined) input.select();
  return new Promise((resolve) => dialog.addEventListener("close", () => {
    if (dialog.returnValue !== "ok") resolve(null);
    else resolve(field === undefined ? true : input.value.trim() || null);
  }, { once: true }));
}

function facts(info) {
  const rows = [["Version", info.version], ["Size", bytes(info.size)], ["Pages", `${info.pages} × ${bytes(info.page_size)}`],
    ["Chunks", `${info.chunks} (${info.stored_chunk_versions} stored versions)`],
    ["Retained versions", `${info.retained_versions} (oldest ${info.oldest_version}, ${info.retention_seconds} s)`],
    ["Last commit", `${when(info.committed_at)} (${ago(info.committed_at)})`],
    ["Lease holder", info.lease ? `${info.lease.owner} (epoch ${info.lease.epoch})` : "none"],
    ["Backup lag", lag(info.backup_lag)], ["Health", info.health]];
  return h("dl", { id: "db-info", class: "facts" }, rows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, String(v))]));
}

async function loadSchema(name, table) {
  const { rows } = await api(`${db(name)}/query`, { method: "POST", body: { sql:
    "SELECT type, name, tbl_name FROM sqlite_schema WHERE type IN ('table', 'index') " +
    "AND name NOT LIKE 'sqlite_%' ORDER BY tbl_name, type DESC, name" } });
  const tables = rows.filter(([type]) => type === "table").map(([, n]) => n).slice(0, 100);
  const counts = {};
  for (let i = 0; i < tables.length; i += 25) {
    const part = tables.slice(i, i + 25);
    const { results } = await api(`${db(name)}/query`, { method: "POST",
      body: { batch: part.map((t) => ({ sql: `SELECT count(*) FROM ${quote(t)}` })) } });
    part.forEach((t, j) => { counts[t] = results[j].rows[0][0]; });
  }
  table.replaceChildren(
    h("thead", {}, h("tr", {}, ["Name", "Type", "Table", "Rows"].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, rows.map(([type, n, tbl]) => h("tr", {}, h("td", { "data-label": "Name" }, n),
      h("td", { "data-label": "Type" }, type), h("td", { "data-label": "Table" }, tbl),
      h("td", { "data-label": "Rows" }, type === "table" ? String(counts[n] ?? "—") : "")))));
}

async function loadVersions(name, figure, table, act) {
  const { versions, current } = await api(`${db(name)}/versions`);
  if (table.dataset.current === String(current)) return;  // unchanged: keep the rows (and any focus)
  table.dataset.current = String(current);
  lineChart(figure, { title: "Size after each commit", unit: "KiB",
    series: [{ label: "size (KiB)", points: versions.map((v) => [v.time, (v.size ?? 0) / 1024]).reverse() }] });
  const row = (v) => h("tr", { dataset: { version: v.version } },
    h("td", { "data-label": "Version" }, String(v.version), v.version === current ? " (current)" : ""),
    h("td", { "data-label": "Committed" }, when(v.time)),
    h("td", { "data-label": "Size" }, bytes(v.size)),
    h("td", { "data-label": "Chunks written" }, String(v.chunks_written ?? "—")),
    h("td", { class: "actions" },
      h("button", { type: "button", class: "restore", disabled: v.version === current,
        "aria-label": `Restore ${name} to version ${v.version}`, onclick: () => act("restore", v.version) }, "Restore to here"),
      h("button", { type: "button", class: "fork", "aria-label": `Fork ${name} from version ${v.version}`,
        onclick: () => act("fork", v.version) }, "Fork from here")));
  table.replaceChildren(
    h("thead", {}, h("tr", {}, ["Version", "Committed", "Size", "Chunks written", "Actions"].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, versions.slice(0, SHOWN_VERSIONS).map(row)));
}

async function loadCharts(name, commits, latency) {
  const { samples } = await api(`/v1/stats?database=${encodeURIComponent(name)}`);
  const series = (key) => samples.map((s) => [s.t, s[key]]);
  lineChart(commits, { title: "Commits and requests per second", unit: "/s", series: [
    { label: "commits/s", points: series("commits_per_s") }, { label: "requests/s", points: series("requests_per_s") }] });
  lineChart(latency, { title: "Request latency", unit: "ms", series: [
    { label: "mean ms", points: series("request_ms") }, { label: "max ms", points: series("request_ms_max") }] });
}

// Render the view; returns a function that stops its refresh timer.
export async function databaseView(view, name) {
  const message = h("p", { id: "action-result", role: "status", class: "message", hidden: true });
  const check = h("p", { id: "check-result", role: "status", class: "message", hidden: true });
  const info = h("div", {});
  const versionsFigure = h("figure", { id: "versions-chart", class: "chart-box" });
  const versions = h("table", { id: "versions-table", class: "grid-table stacked" });
  const schema = h("table", { id: "schema-table", class: "grid-table stacked" });
  const commits = h("figure", { id: "chart-commits", class: "chart-box" });
  const latency = h("figure", { id: "chart-latency", class: "chart-box" });
  const refresh = async () => info.replaceChildren(facts(await api(`${db(name)}/status`)));
  const act = async (kind, version) => {
    const answer = kind === "restore"
      ? await confirmAction(`Restore ${name} to version ${version}? Its content becomes that version's, as a new version on top (this can itself be undone).`)
      : await confirmAction(`Fork version ${version} of ${name} into a new database named:`, `${name}-v${version}`);
    if (answer === null) return;
    try {
      const body = kind === "restore" ? { version } : { version, into: answer };
      const done = await api(`${db(name)}/restore`, { method: "POST", body });
      say(message, kind === "restore" ? `Restored ${name} to version ${version}: now version ${done.version}.`
        : `Forked version ${version} into ${done.into}.`, "ok");
      await Promise.all([refresh(), loadVersions(name, versionsFigure, versions, act)]);
    } catch (err) {
      say(message, err.describe ? err.describe() : String(err), "error");
    }
  };
  const runCheck = async (event) => {
    const button = event.currentTarget;
    button.disabled = true;
    say(check, "Checking every stored chunk and record, then integrity_check…");
    try {
      const r = await api(`${db(name)}/check`, { method: "POST" });
      say(check, r.ok ? `OK: ${r.chunks_checked} chunk versions and ${r.records_checked} records verified; integrity_check: ok.`
        : `PROBLEMS: ${[...r.corrupt, ...r.integrity.filter((x) => x !== "ok")].join("; ")}`, r.ok ? "ok" : "error");
      await refresh();
    } catch (err) {
      say(check, err.describe ? err.describe() : String(err), "error");
    } finally {
      button.disabled = false;
    }
  };
  view.replaceChildren(
    h("section", { class: "card" }, h("h2", { id: "db-title" }, name),
      h("p", {}, h("a", { href: `#/sql/${encodeURIComponent(name)}` }, "Query this database"), " · ",
        h("a", { href: "#/" }, "All databases")),
      info, h("button", { type: "button", id: "check-button", onclick: runCheck }, "Check integrity and checksums"), check),
    h("section", { class: "card" }, h("h2", {}, "Load"), h("div", { class: "charts" }, commits, latency)),
    h("section", { class: "card" }, h("h2", {}, "Versions"), message, versionsFigure, h("div", { class: "scroll" }, versions)),
    h("section", { class: "card" }, h("h2", {}, "Schema"), h("div", { class: "scroll" }, schema)));
  await Promise.all([refresh(), loadVersions(name, versionsFigure, versions, act), loadSchema(name, schema),
    loadCharts(name, commits, latency)]);
  let ticks = 0;
  const timer = setInterval(() => {
    loadCharts(name, commits, latency).catch(() => {});
    if (++ticks % FACTS_EVERY === 0) {  // facts and versions cost more (they list the storage)
      Promise.all([refresh(), loadVersions(name, versionsFigure, versions, act)]).catch(() => {});
    }
  }, REFRESH_MS);
  return () => clearInterval(timer);
}

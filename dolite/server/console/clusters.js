// Clusters: the list (#/clusters) and one cluster (#/cluster/NAME): its shards, slot map,
// in-doubt transactions, and an SQL box routed by key or run on every shard.

import { api, cluster, mapLimited } from "./api.js";
import { slotBar } from "./charts.js";
import { bytes, h, say } from "./dom.js";
import { sqlBox } from "./sql.js";

const total = (info, key) => info.shards.reduce((n, s) => n + (key === "in_doubt" ? s.in_doubt.length : s[key] ?? 0), 0);
const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
const range = ([first, last]) => (first === last ? String(first) : `${first}–${last}`);

function cell(label, ...content) {
  return h("td", { "data-label": label }, ...content);
}

function inDoubtCell(count) {
  return h("span", { class: count ? "health corrupt" : "health ok" }, count ? plural(count, "transaction") : "none");
}

export async function clustersView(view) {
  const status = h("p", { role: "status", class: "message" });
  const table = h("table", { id: "cluster-table", class: "grid-table stacked" });
  view.replaceChildren(h("section", { class: "card" }, h("h2", {}, "Clusters"), status, h("div", { class: "scroll" }, table)));
  say(status, "Loading…");
  const { clusters } = await api("/v1/clusters");
  const infos = await mapLimited(clusters, 4, (name) => api(cluster(name)).catch((error) => ({ name, error })));
  say(status, infos.length ? "" : "No clusters yet: create one with POST /v1/clusters or dolite cluster create.");
  const row = (c) => h("tr", { dataset: { name: c.name }, class: !c.error && total(c, "in_doubt") ? "in-doubt" : "" },
    cell("Name", h("a", { href: `#/cluster/${encodeURIComponent(c.name)}` }, c.name)),
    ...(c.error ? [h("td", { colspan: 4, class: "error", "data-label": "Error" }, c.error.describe?.() ?? String(c.error))]
      : [cell("Shards", String(c.shards.length)), cell("Size", bytes(total(c, "size"))),
        cell("Map version", String(c.map_version)), cell("In doubt", inDoubtCell(total(c, "in_doubt")))]));
  table.replaceChildren(
    h("thead", {}, h("tr", {}, ["Name", "Shards", "Size", "Map version", "In doubt"].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, infos.map(row)));
}

function facts(info) {
  const decisions = Object.entries(info.decisions).map(([state, n]) => `${state}: ${n}`).join(", ") || "none";
  const s = info.stats;
  const rows = [["Shards", info.shards.length], ["Size", bytes(total(info, "size"))],
    ["Slots", `${info.slots} (map version ${info.map_version})`], ["Decisions on record", decisions],
    ["2PC in this server process", `${s.cross_shard_commits} cross-shard commits, ${s.aborts} aborts, ` +
      `${s.unknown_outcomes} unknown outcomes, ${s.apply_failures} apply failures`],
    ["In-doubt resolutions", `${s.rolled_forward} rolled forward, ${s.removed} removed, ${s.presumed_aborted} presumed aborted`]];
  return h("dl", { id: "cluster-info", class: "facts" }, rows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, String(v))]));
}

function shardsTable(info) {
  const row = (s, i) => h("tr", { dataset: { name: s.name }, class: s.in_doubt.length ? "in-doubt" : "" },
    cell("Shard", h("span", {}, h("span", { class: `swatch k${i % 8}`, "aria-hidden": "true" }),
      h("a", { href: `#/db/${encodeURIComponent(s.name)}` }, s.name))),
    cell("Slots", `${s.slots} (${(100 * s.slots / info.slots).toFixed(1)} %)`),
    cell("Slot ranges", (s.ranges ?? []).map(range).join(", ") || "none"),
    cell("Version", String(s.version)), cell("Size", bytes(s.size)),
    cell("In doubt", s.in_doubt.length ? h("span", { class: "health corrupt" }, s.in_doubt.join(", ")) : "none"));
  return h("table", { id: "shards-table", class: "grid-table stacked" },
    h("thead", {}, h("tr", {}, ["Shard", "Slots", "Slot ranges", "Version", "Size", "In doubt"].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, info.shards.map(row)));
}

function inDoubtAlert(info) {
  const stuck = info.shards.filter((s) => s.in_doubt.length);
  const alert = h("p", { id: "in-doubt", role: "alert", class: "message error", hidden: true });
  if (stuck.length) {
    say(alert, `${plural(total(info, "in_doubt"), "transaction")} in doubt: ` +
      stuck.map((s) => `${s.in_doubt.join(", ")} on ${s.name}`).join("; ") +
      ". The next writer of each shard resolves them from the decision on record (docs/CLUSTERS.md, Recovery).", "error");
  }
  return alert;
}

// The SQL box of a cluster: statements on the shard of a key (several: one batch, one
// transaction), or one statement on every shard.
function clusterSql(name) {
  const mode = h("select", { id: "sql-mode" },
    h("option", { value: "key" }, "On the shard that holds a key"), h("option", { value: "all" }, "On every shard"));
  const key = h("input", { id: "sql-key", autocomplete: "off", placeholder: "a routing key, e.g. alice" });
  const keyField = h("div", { class: "field" }, h("label", { for: "sql-key" }, "Key"), key);
  mode.addEventListener("change", () => { keyField.hidden = mode.value === "all"; });
  const request = (statements) => {
    const path = `${cluster(name)}/query`;
    if (mode.value === "all") {
      if (statements.length > 1) throw new Error("On every shard, run one statement at a time (a batch needs a key).");
      return { path, body: { all: true, sql: statements[0] } };
    }
    if (!key.value) throw new Error("Type a routing key (its shard runs the statements), or choose every shard.");
    return { path, body: statements.length === 1 ? { key: key.value, sql: statements[0] }
      : { batch: statements.map((sql) => ({ key: key.value, sql })) } };
  };
  return sqlBox({ fields: [h("label", { for: "sql-mode" }, "Run"), mode, keyField], request, filename: () => name }).card;
}

export async function clusterView(view, name) {
  const body = h("div", {});
  const failed = h("p", { id: "cluster-error", role: "alert", class: "message error", hidden: true });
  const refresh = async () => {
    const info = await api(cluster(name));
    const bar = h("figure", { id: "slot-map", class: "chart-box" });
    slotBar(bar, info);
    body.replaceChildren(facts(info), inDoubtAlert(info), h("h3", {}, "Slot map"), bar,
      h("h3", {}, "Shards"), h("div", { class: "scroll" }, shardsTable(info)));
  };
  view.replaceChildren(
    h("section", { class: "card" }, h("h2", { id: "cluster-title" }, name),
      h("p", {}, h("a", { href: "#/clusters" }, "All clusters"), " · ",
        h("button", { type: "button", id: "cluster-refresh", class: "plain", onclick: () => refresh().then(
          () => say(failed, ""), (err) => say(failed, err.describe ? err.describe() : String(err), "error")) }, "Refresh")),
      failed, body),
    clusterSql(name));
  await refresh();
}

// The databases view: one row per database the token may read; sortable and filterable.

import { api, db, mapLimited } from "./api.js";
import { ago, bytes, h, lag, say } from "./dom.js";

const COLUMNS = [
  ["name", "Name", (d) => h("a", { href: `#/db/${encodeURIComponent(d.name)}` }, d.name)],
  ["size", "Size", (d) => bytes(d.size)],
  ["pages", "Pages", (d) => d.pages ?? "—"],
  ["version", "Version", (d) => d.version ?? "—"],
  ["committed_at", "Last commit", (d) => h("span", { title: d.committed_at ? new Date(d.committed_at * 1000).toISOString() : "" }, ago(d.committed_at))],
  ["lease", "Lease holder", (d) => d.lease?.owner ?? "—"],
  ["backup_lag", "Backup lag", (d) => (d.backup_lag ? h("span", { class: d.backup_lag.lagging === false ? "" : "health corrupt" }, lag(d.backup_lag))
    : h("span", { title: lag(null) }, "—"))],
  ["health", "Health", (d) => h("span", { class: `health ${d.health}` }, d.health)],
];

const sortKey = (d, key) => (key === "lease" ? d.lease?.owner ?? ""
  : key === "backup_lag" ? d.backup_lag?.seconds_behind ?? -1 : d[key] ?? "");

export async function databasesView(view) {
  const status = h("p", { role: "status", class: "message" });
  const filter = h("input", { id: "db-filter", type: "search", placeholder: "Filter by name", "aria-label": "Filter databases by name" });
  const table = h("table", { id: "db-table", class: "grid-table" });
  view.replaceChildren(h("section", { class: "card" }, h("h2", {}, "Databases"), filter, status,
    h("div", { class: "scroll" }, table)));
  say(status, "Loading…");
  const { databases } = await api("/v1/databases");
  const rows = await mapLimited(databases, 4, (name) =>
    api(`${db(name)}/status`).catch((err) => ({ name, health: err.code === "corrupt" ? "corrupt" : "error", error: err })));
  say(status, rows.length ? "" : "No databases yet: create one with POST /v1/databases.");
  const state = { key: "name", ascending: true };
  const render = () => {
    const needle = filter.value.trim().toLowerCase();
    const shown = rows.filter((d) => d.name.toLowerCase().includes(needle));
    shown.sort((a, b) => {
      const [x, y] = [sortKey(a, state.key), sortKey(b, state.key)];
      return (x < y ? -1 : x > y ? 1 : 0) * (state.ascending ? 1 : -1);
    });
    const head = h("tr", {}, COLUMNS.map(([key, label]) => {
      const sorted = state.key === key ? (state.ascending ? "ascending" : "descending") : "none";
      return h("th", { scope: "col", "aria-sort": sorted },
        h("button", { type: "button", class: "sort", dataset: { sort: key }, onclick: () => {
          state.ascending = state.key === key ? !state.ascending : true;
          state.key = key;
          render();
          table.querySelector(`button[data-sort="${key}"]`).focus();
        } }, label, sorted === "none" ? "" : sorted === "ascending" ? " ▲" : " ▼"));
    }));
    const body = shown.map((d) => h("tr", { dataset: { name: d.name } },
      COLUMNS.map(([key, label, cell]) => h("td", { "data-label": label }, cell(d)))));
    table.replaceChildren(h("thead", {}, head), h("tbody", {}, body));
  };
  filter.addEventListener("input", render);
  render();
}

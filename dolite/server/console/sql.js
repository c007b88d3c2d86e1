// The SQL box: run a statement or a batch (split on semicolons outside quotes and
// comments) with the token's rights; paginated results; errors with their code; CSV export.

import { api, db } from "./api.js";
import { h, say } from "./dom.js";

const PAGE = 25;

// Split SQL text into statements (quotes, [identifiers], -- and /* */ comments respected).
export function splitStatements(text) {
  const out = [];
  let start = 0, i = 0;
  const skipTo = (end) => { const at = text.indexOf(end, i + 1); i = at < 0 ? text.length : at + end.length - 1; };
  for (; i < text.length; i++) {
    const c = text[i];
    if (c === "'" || c === '"' || c === "`") skipTo(c);
    else if (c === "[") skipTo("]");
    else if (c === "-" && text[i + 1] === "-") skipTo("\n");
    else if (c === "/" && text[i + 1] === "*") skipTo("*/");
    else if (c === ";") { out.push(text.slice(start, i)); start = i + 1; }
  }
  out.push(text.slice(start));
  return out.map((s) => s.trim()).filter((s) => s && !/^(--[^\n]*\n?|\/\*[\s\S]*?\*\/|\s)*$/.test(s));
}

// A value as shown (and exported): tagged values by their text.
function show(value) {
  if (value === null) return "NULL";
  if (typeof value === "object") return value.type === "blob" ? `x'${[...atob(value.base64)].map((ch) => ch.charCodeAt(0).toString(16).padStart(2, "0")).join("")}'` : String(value.value);
  return String(value);
}

export function toCSV(columns, rows) {
  const cell = (v) => {
    const s = v === null ? "" : show(v);
    return /[",\n\r]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
  };
  return [columns, ...rows].map((r) => r.map((v, i) => (r === columns ? cell(String(v)) : cell(v))).join(",")).join("\r\n") + "\r\n";
}

// The shards an answer (or a batch's answers) ran on, in words; "" for a database.
function where(answer, results) {
  if (answer.shards !== undefined) return ` on ${answer.shards} shards`;
  const shards = [...new Set(results.map((r) => r.shard).filter(Boolean))];
  return shards.length ? ` on ${shards.join(", ")}` : "";
}

// An SQL form: `fields` (labelled inputs shown before the statements box) and
// `request(statements)` -> {path, body}, which may throw an Error the user should read
// (nothing is sent then). `filename()` names the CSV export. Returns the card and its box.
export function sqlBox({ fields = [], request, filename }) {
  const text = h("textarea", { id: "sql-text", rows: 6, spellcheck: "false",
    placeholder: "SELECT * FROM sqlite_schema;  (several statements separated by ; run as one batch)" });
  const run = h("button", { type: "submit", id: "sql-run" }, "Run");
  const error = h("p", { id: "sql-error", role: "alert", class: "message error", hidden: true });
  const summary = h("p", { id: "sql-summary", role: "status", class: "message" });
  const table = h("table", { id: "sql-results", class: "grid-table" });
  const prev = h("button", { type: "button", id: "sql-prev" }, "Previous");
  const next = h("button", { type: "button", id: "sql-next" }, "Next");
  const page = h("span", { id: "sql-page", "aria-live": "polite" });
  const csv = h("button", { type: "button", id: "sql-csv" }, "Export CSV");
  const pager = h("div", { class: "pager", hidden: true }, prev, page, next, csv);
  let result = null, at = 0;

  const render = () => {
    const { columns, rows } = result;
    const pages = Math.max(1, Math.ceil(rows.length / PAGE));
    table.replaceChildren(
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, rows.slice(at * PAGE, (at + 1) * PAGE).map((r) =>
        h("tr", {}, r.map((v, i) => h("td", { "data-label": columns[i], class: v === null ? "null" : "" }, show(v)))))));
    page.textContent = `Page ${at + 1} of ${pages}`;
    prev.disabled = at === 0;
    next.disabled = at >= pages - 1;
    pager.hidden = !columns.length;
  };
  prev.addEventListener("click", () => { at--; render(); });
  next.addEventListener("click", () => { at++; render(); });
  csv.addEventListener("click", () => {
    const link = h("a", { href: URL.createObjectURL(new Blob([toCSV(result.columns, result.rows)], { type: "text/csv" })),
      download: `${filename()}-result.csv` });
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 1000);
  });

  const submit = async (event) => {
    event.preventDefault();
    const statements = splitStatements(text.value);
    if (!statements.length) return;
    run.disabled = true;
    say(error, "");
    try {
      const { path, body } = request(statements);
      const answer = await api(path, { method: "POST", body });
      const results = answer.results ?? [answer];
      const shown = [...results].reverse().find((r) => r.columns.length) ?? results.at(-1);
      result = { columns: shown.columns, rows: shown.rows };
      at = 0;
      render();
      const changed = results.reduce((n, r) => n + r.rows_changed, 0);
      say(summary, `${results.length} statement${results.length > 1 ? "s" : ""}${where(answer, results)}: ` +
        `${shown.rows.length} rows, ${changed} changed, ${answer.duration_ms} ms.`, "ok");
    } catch (err) {
      say(summary, "");
      result = null;  // no stale rows next to the error
      table.replaceChildren();
      pager.hidden = true;
      say(error, err.describe ? err.describe() : err.message, "error");
      error.dataset.code = err.code ?? "";
    } finally {
      run.disabled = false;
    }
  };
  text.addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) submit(e); });
  const card = h("section", { class: "card" }, h("h2", {}, "SQL"),
    h("form", { id: "sql-form", onsubmit: submit }, fields,
      h("label", { for: "sql-text" }, "Statements (Ctrl+Enter runs)"), text, run),
    error, summary, h("div", { class: "scroll" }, table), pager);
  return { card, text };
}

// The SQL view of one database (#/sql/NAME): a batch is one transaction.
export async function sqlView(view, chosen) {
  const { databases } = await api("/v1/databases");
  const select = h("select", { id: "sql-db" }, databases.map((n) => h("option", { value: n, selected: n === chosen }, n)));
  const request = (statements) => {
    if (!select.value) throw new Error("No database to query: create one first.");
    return { path: `${db(select.value)}/query`,
      body: statements.length === 1 ? { sql: statements[0] } : { batch: statements.map((sql) => ({ sql })) } };
  };
  const { card, text } = sqlBox({ fields: [h("label", { for: "sql-db" }, "Database"), select], request,
    filename: () => select.value });
  view.replaceChildren(card);
  text.focus();
}

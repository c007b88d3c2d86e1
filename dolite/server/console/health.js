// Health: the banner on every page, and a view with the facts of /v1/health, /healthz and /metrics.

import { api } from "./api.js";
import { h } from "./dom.js";

export function problems(health) {
  const out = [];
  if (health.storage !== "ok") out.push(`Storage ${health.storage}`);
  if (health.corrupt.length) out.push(`Corrupt: ${health.corrupt.join(", ")} (found by check)`);
  if (health.backup?.lagging?.length) out.push(`Backup lags: ${health.backup.lagging.join(", ")}`);
  if (health.backup?.error) out.push(`Backup target ${health.backup.target}: ${health.backup.error}`);
  return out;
}

export async function updateBanner(banner) {
  const health = await api("/v1/health");
  const found = problems(health);
  banner.textContent = found.join(" · ");
  banner.hidden = !found.length;
  return health;
}

export async function healthView(view, banner) {
  const health = await updateBanner(banner);
  const alive = await fetch("/healthz").then((r) => r.json()).catch((e) => ({ status: `unreachable: ${e.message}` }));
  const metrics = await api("/metrics", { text: true });
  const lines = metrics.split("\n").filter((l) => l.startsWith("dolite_") && !l.includes("_bucket{") && !l.includes("_created"));
  const rows = [["Service (/healthz)", alive.status], ["Overall", health.status], ["Storage", health.storage],
    ["Corrupt databases", health.corrupt.join(", ") || "none found"], ["Backups", !health.backup ? "no target configured" : health.backup.error ? `${health.backup.target}: ${health.backup.error}`
      : `${health.backup.target}: ${health.backup.lagging.length ? `lagging: ${health.backup.lagging.join(", ")}` : "none lagging"}`],
    ["Databases loaded", health.objects_loaded], ["Sessions open", health.sessions_open]];
  view.replaceChildren(h("section", { class: "card" }, h("h2", {}, "Health"),
    h("dl", { id: "health-facts", class: "facts" }, rows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, String(v))])),
    h("h3", {}, "Metrics"), h("pre", { id: "metrics", class: "metrics", tabindex: "0" }, lines.join("\n"))));
}

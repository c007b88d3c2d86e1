// Small DOM helpers: build elements without innerHTML (no markup injection), format values.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, value);
  }
  el.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

export function bytes(n) {
  if (n === null || n === undefined) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

export function when(seconds) {
  if (!seconds) return "—";
  return new Date(seconds * 1000).toLocaleString(undefined, { hour12: false });
}

export function ago(seconds) {
  if (!seconds) return "—";
  const s = Math.max(0, Date.now() / 1000 - seconds);
  if (s < 60) return `${Math.round(s)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

// Show a message in a status or alert element.
export function say(el, text, kind = "info") {
  el.textContent = text;
  el.className = `message ${kind}`;
  el.hidden = !text;
}

// A database's backup lag (GET /status's backup_lag) in words.
export function lag(b) {
  if (!b) return "no backup target configured";
  if (b.error) return `cannot read ${b.target}: ${b.error}`;
  if (!b.versions_behind) return "up to date";
  return `${b.versions_behind} version${b.versions_behind > 1 ? "s" : ""} behind, ${Math.round(b.seconds_behind)} s`;
}

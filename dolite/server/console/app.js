// The console's entry point: login, hash routes, the health banner.
// Routes: #/ databases, #/db/NAME one database, #/sql[/NAME] the SQL box, #/clusters,
// #/cluster/NAME one cluster, #/health.

import { api, token, whenUnauthorized } from "./api.js";
import { clusterView, clustersView } from "./clusters.js";
import { databaseView } from "./database.js";
import { databasesView } from "./databases.js";
import { h, say } from "./dom.js";
import { healthView, updateBanner } from "./health.js";
import { sqlView } from "./sql.js";

const $ = (id) => document.getElementById(id);
const BANNER_MS = 10000;
const SECTION = { db: "", cluster: "clusters" };  // the nav entry a page belongs to
let stopView = null;
let bannerTimer = null;

function showLogin(message = "") {
  token.clear();
  clearInterval(bannerTimer);
  stopView?.();
  stopView = null;
  $("nav").hidden = true;
  $("health-banner").hidden = true;
  $("view").replaceChildren();
  $("login").hidden = false;
  say($("login-error"), message, "error");
  $("token").focus();
}

async function route() {
  stopView?.();
  stopView = null;
  const view = $("view");
  const [, page = "", arg] = location.hash.match(/^#\/([^/]*)\/?(.*)$/) ?? [];
  const name = arg ? decodeURIComponent(arg) : undefined;
  for (const link of $("nav").querySelectorAll("a")) {
    const here = link.getAttribute("href") === `#/${SECTION[page] ?? page}`;
    if (here) link.setAttribute("aria-current", "page"); else link.removeAttribute("aria-current");
  }
  try {
    if (page === "db" && name) stopView = await databaseView(view, name);
    else if (page === "sql") await sqlView(view, name);
    else if (page === "clusters") await clustersView(view);
    else if (page === "cluster" && name) await clusterView(view, name);
    else if (page === "health") await healthView(view, $("health-banner"));
    else await databasesView(view);
  } catch (err) {
    if (err.status === 401) return;
    view.replaceChildren(h("p", { class: "message error", role: "alert" }, err.describe ? err.describe() : String(err)));
  }
}

function enter() {
  $("login").hidden = true;
  $("nav").hidden = false;
  const banner = () => updateBanner($("health-banner")).catch(() => {});
  banner();
  bannerTimer = setInterval(banner, BANNER_MS);
  route();
}

async function login(event) {
  event.preventDefault();
  const value = $("token").value.trim();
  try {
    await api("/v1/databases", { tokenOverride: value });
  } catch (err) {
    say($("login-error"), err.status === 401 ? "This token is not valid for this service." : err.describe(), "error");
    return;
  }
  token.set(value);
  $("token").value = "";
  enter();
}

function start() {
  $("login").addEventListener("submit", login);
  $("logout").addEventListener("click", () => showLogin());
  document.querySelector(".skip").addEventListener("click", (e) => { e.preventDefault(); $("main").focus(); });
  whenUnauthorized((err) => showLogin(`Logged out: ${err.message}`));
  window.addEventListener("hashchange", () => { if (token.get()) route(); });
  if (token.get()) enter(); else showLogin();
}

start();

// @ts-check
/**
 * Page shell: header and nav, toasts, login form, logout. Every page's HTML holds only its
 * <title>, its script and its own <main id="app" hidden>; boot() renders the rest before it.
 */
import { $, fail, h } from "./dom.js";
import { errorFrom, explain, GatewayError, whenAdminRejected } from "./http.js";
import { session } from "./session.js";

/** The console's pages as [<body data-page>, href, nav label]. */
const PAGES = [
  ["tenants", "/console/", "Tenants & keys"],
  ["tasks", "/console/tasks", "Live tasks"],
  ["playground", "/console/playground", "Playground"],
  ["finance", "/console/finance", "Finance"],
  ["upstreams", "/console/upstreams", "Upstreams"],
];

/** Puts the header (nav with the current page marked), the toasts and the login form before <main>. */
function renderShell() {
  const page = document.body.dataset.page;
  const logout = () => {
    session.clear();
    location.assign("/console/");
  };
  document.body.prepend(
    h(
      "header",
      { class: "top" },
      h("a", { class: "brand", href: "/console/" }, "MJ gateway"),
      h(
        "nav",
        { "aria-label": "Console" },
        PAGES.map(([name, href, label]) =>
          h("a", { href, dataset: { nav: name }, "aria-current": name === page && "page" }, label),
        ),
        h("a", { href: "/docs" }, "API docs"),
      ),
      h(
        "button",
        { id: "logout", class: "link small", type: "button", hidden: true, onclick: logout },
        "Log out",
      ),
    ),
    h("div", { id: "toasts", class: "toasts", "aria-live": "polite" }),
    h(
      "section",
      { id: "login", class: "login", hidden: true },
      h(
        "form",
        { id: "login-form", class: "card", autocomplete: "off" },
        h("h1", null, "Operator console"),
        h(
          "p",
          { class: "muted" },
          "Paste the gateway's admin token (",
          h("code", null, "ADMIN_TOKEN"),
          "; ",
          h("code", null, "npm start"),
          " prints it). It stays in this tab's sessionStorage and is sent as an Authorization header, never in a URL.",
        ),
        h(
          "label",
          null,
          "Admin token ",
          h("input", { id: "login-token", type: "password", autocomplete: "off", required: true }),
        ),
        h("p", { id: "login-error", class: "error", role: "alert", hidden: true }),
        h("button", { type: "submit" }, "Log in"),
      ),
    ),
  );
}

/** @param {string} [message] */
function showLogin(message) {
  $("#app").hidden = true;
  $("#logout").hidden = true;
  $("#login").hidden = false;
  const error = $("#login-error");
  error.textContent = message ?? "";
  error.hidden = !message;
  $("#login-token").focus();
}

/** @param {string} token */
async function checkAdminToken(token) {
  const response = await fetch("/admin/tenants?limit=1", {
    headers: { authorization: `Bearer ${token}` },
    cache: "no-store",
  }).catch(() => null);
  if (!response) throw new GatewayError(0, "network_error", "The gateway could not be reached.");
  if (!response.ok) throw await errorFrom(response);
}

/**
 * Starts a page: asks for the admin token unless this tab has a working one, then runs `init`.
 * @param {() => Promise<void> | void} init
 */
export function boot(init) {
  renderShell();
  whenAdminRejected((error) => showLogin(explain(error)));
  const start = async () => {
    $("#login").hidden = true;
    $("#app").hidden = false;
    $("#logout").hidden = false;
    try {
      await init();
    } catch (error) {
      fail(error);
    }
  };
  /** @type {HTMLFormElement} */ ($("#login-form")).addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = /** @type {HTMLInputElement} */ ($("#login-token"));
    const token = input.value.trim();
    try {
      await checkAdminToken(token);
    } catch (error) {
      showLogin(
        error instanceof GatewayError && error.status === 401
          ? "That token was rejected: check ADMIN_TOKEN (npm start prints it)."
          : explain(error),
      );
      return;
    }
    input.value = "";
    session.setAdminToken(token);
    // A fresh start, so every part of the page loads with the new token.
    if (!$("#app").dataset.started) {
      $("#app").dataset.started = "1";
      await start();
    } else location.reload();
  });
  const token = session.adminToken();
  if (!token) {
    showLogin();
    return;
  }
  checkAdminToken(token).then(
    async () => {
      $("#app").dataset.started = "1";
      await start();
    },
    (error) => {
      if (error instanceof GatewayError && error.status === 401) {
        session.forgetAdminToken();
        showLogin("Your admin session has expired or the token changed: log in again.");
      } else showLogin(explain(error));
    },
  );
}

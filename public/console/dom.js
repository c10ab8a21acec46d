// @ts-check
/**
 * A tiny DOM builder (text is always set as text, never parsed as HTML), and the page's
 * feedback: toasts, errors from failed calls, buttons disabled while their action runs.
 */
import { explain } from "./http.js";

/**
 * Builds an element. Text is always set as text (never parsed as HTML).
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Record<string, any> | null} [attrs] `class`, `on<event>`, `dataset`, properties or attributes
 * @param {...(Node | string | number | null | undefined | false | (Node | string | null | undefined | false)[])} children
 * @returns {HTMLElementTagNameMap[K]}
 */
export function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name.startsWith("on") && typeof value === "function")
      node.addEventListener(name.slice(2), value);
    else if (name in node && typeof value !== "string") /** @type {any} */ (node)[name] = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

/** @param {Node} node @param {any[]} children */
function append(node, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.appendChild(typeof child === "object" ? child : document.createTextNode(String(child)));
  }
}

/**
 * @template {HTMLElement} T
 * @param {string} selector
 * @param {ParentNode} [root]
 * @returns {T}
 */
export function $(selector, root = document) {
  const node = root.querySelector(selector);
  if (!node) throw new Error(`console: ${selector} is missing from the page`);
  return /** @type {T} */ (node);
}

/** Replaces an element's children. @param {Element} node @param {...any} children */
export function fill(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

/**
 * A message at the top of the page: errors stay until dismissed, the rest fade.
 * @param {string} message
 * @param {"error" | "ok" | "info"} [kind]
 */
export function toast(message, kind = "error") {
  const region = $("#toasts");
  const item = h(
    "div",
    { class: `toast ${kind}`, role: kind === "error" ? "alert" : "status" },
    h("span", null, message),
    h(
      "button",
      { class: "icon", type: "button", "aria-label": "Dismiss", onclick: () => item.remove() },
      "×",
    ),
  );
  region.prepend(item);
  while (region.children.length > 4) region.lastElementChild?.remove();
  if (kind !== "error") setTimeout(() => item.remove(), 6000);
  return item;
}

/** Shows an error from a failed call. @param {unknown} error */
export const fail = (error) => toast(explain(error), "error");

/**
 * Runs an async action from a button or form, disabling it meanwhile; errors become toasts.
 * @param {HTMLButtonElement | HTMLFormElement | null} control
 * @param {() => Promise<unknown>} action
 */
export async function busy(control, action) {
  const buttons = control instanceof HTMLFormElement ? [...control.querySelectorAll("button")] : [control];
  for (const b of buttons) if (b) b.disabled = true;
  try {
    return await action();
  } catch (error) {
    fail(error);
    return undefined;
  } finally {
    for (const b of buttons) if (b) b.disabled = false;
  }
}

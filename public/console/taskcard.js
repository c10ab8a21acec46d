// @ts-check
/**
 * One task as a card: status, progress, cost, and its results when done — the grid image
 * and its four tiles, a single upscaled image, or videos. Updated in place from the live
 * stream (the task object exactly as GET /v1/midjourney/{id} returns it).
 */
import { fill, h } from "./dom.js";
import { safeUrl, shortId, when } from "./format.js";
import { costMicros, usd } from "./money.js";
import { TERMINAL } from "./sse.js";

/**
 * @typedef {{
 *   id: string, status: string, action: string, progress?: string, prompt?: string | null,
 *   grid_image_url?: string, image_urls?: string[], video_url?: string, video_urls?: string[],
 *   buttons?: { customId: string, label: string }[], fail_reason?: string | null, cost?: number,
 *   created?: number, completed?: number | null,
 * }} Task
 */

/**
 * @typedef {{
 *   onButton?: (task: Task, button: { customId: string, label: string }) => void,
 *   extraActions?: (task: Task) => (Node | null)[],
 *   costMicros?: number | null,
 * }} CardOptions
 */

/** Friendlier text for buttons whose upstream label is a bare symbol. */
const BUTTON_TEXT = /** @type {Record<string, string>} */ ({
  "🔄": "🔄 Reroll",
  "⬅️": "⬅️ Pan",
  "➡️": "➡️ Pan",
  "⬆️": "⬆️ Pan",
  "⬇️": "⬇️ Pan",
});

const percent = (/** @type {string | undefined} */ progress) => {
  const n = Number.parseInt(String(progress ?? "0"), 10);
  return Number.isFinite(n) ? Math.max(0, Math.min(100, n)) : 0;
};

/** A new card element for a task. @param {Task} task @param {CardOptions} [options] */
export function taskCard(task, options = {}) {
  const card = h("article", { class: "task", dataset: { taskId: task.id } });
  /** @type {any} */ (card)._options = options;
  updateTaskCard(card, task);
  return card;
}

/**
 * Re-renders a card from a newer task object; media are rebuilt only when their URLs change.
 * @param {HTMLElement} card
 * @param {Task} task
 */
export function updateTaskCard(card, task) {
  /** @type {CardOptions} */
  const options = /** @type {any} */ (card)._options ?? {};
  const status = String(task.status ?? "");
  card.dataset.status = status;
  card.className = `task status-${status.toLowerCase()}`;
  const progress = TERMINAL.has(status) && status === "SUCCESS" ? 100 : percent(task.progress);
  const cost = options.costMicros ?? (task.cost === undefined ? null : costMicros(task.cost));

  let head = card.querySelector(".task-head");
  if (!head) {
    head = h("header", { class: "task-head" });
    card.append(
      head,
      h("div", { class: "bar" }, h("span")),
      h("p", { class: "prompt" }),
      h("div", { class: "media" }),
      h("p", { class: "fail" }),
      h("div", { class: "actions" }),
    );
  }
  fill(
    head,
    h("span", { class: "action" }, String(task.action ?? "").toLowerCase()),
    h("span", { class: `badge ${status.toLowerCase()}`, "data-role": "status" }, status),
    h("span", { class: "pct", "data-role": "progress" }, `${progress}%`),
    h("span", { class: "cost", "data-role": "cost", title: "what the tenant is charged" }, usd(cost)),
    h("code", { class: "id", title: task.id }, shortId(task.id)),
    task.created ? h("time", { class: "muted" }, when(task.created)) : null,
  );
  const bar = /** @type {HTMLElement} */ (card.querySelector(".bar > span"));
  bar.style.width = `${progress}%`;
  /** @type {HTMLElement} */ (card.querySelector(".bar")).setAttribute("aria-valuenow", String(progress));
  /** @type {HTMLElement} */ (card.querySelector(".prompt")).textContent = task.prompt ?? "";

  const fail = /** @type {HTMLElement} */ (card.querySelector(".fail"));
  fail.textContent = task.fail_reason ? `Failed: ${task.fail_reason}` : "";
  fail.hidden = !task.fail_reason;

  const media = /** @type {HTMLElement} */ (card.querySelector(".media"));
  const mediaKey = JSON.stringify([task.grid_image_url, task.image_urls, task.video_urls, task.video_url]);
  if (media.dataset.key !== mediaKey) {
    media.dataset.key = mediaKey;
    fill(media, ...renderMedia(task));
  }

  const actions = /** @type {HTMLElement} */ (card.querySelector(".actions"));
  const actionsKey = JSON.stringify([status, task.buttons?.map((b) => b.customId)]);
  if (actions.dataset.key !== actionsKey) {
    actions.dataset.key = actionsKey;
    const buttons =
      status === "SUCCESS" && options.onButton
        ? (task.buttons ?? []).map((button) =>
            h(
              "button",
              {
                type: "button",
                class: "chip",
                title: button.customId,
                "data-label": button.label,
                onclick: () => options.onButton?.(task, button),
              },
              BUTTON_TEXT[button.label] ?? button.label,
            ),
          )
        : [];
    fill(actions, ...buttons, ...(options.extraActions?.(task) ?? []));
    actions.hidden = actions.childElementCount === 0;
  }
}

/** @param {Task} task */
function renderMedia(task) {
  /** @type {Node[]} */
  const nodes = [];
  const videos = (task.video_urls?.length ? task.video_urls : task.video_url ? [task.video_url] : [])
    .map(safeUrl)
    .filter(Boolean);
  if (videos.length) {
    nodes.push(
      h(
        "div",
        { class: "videos" },
        videos.map((src, i) =>
          h(
            "figure",
            null,
            h("video", { src, controls: true, muted: true, playsInline: true, preload: "metadata" }),
            h("figcaption", null, h("a", { href: src, target: "_blank", rel: "noopener" }, `video ${i + 1}`)),
          ),
        ),
      ),
    );
  }
  const grid = safeUrl(task.grid_image_url);
  const images = (task.image_urls ?? []).map(safeUrl).filter(Boolean);
  if (grid) {
    nodes.push(
      h(
        "a",
        { class: "grid", href: grid, target: "_blank", rel: "noopener", title: "the grid" },
        h("img", { src: grid, alt: "grid image", loading: "lazy", "data-role": "grid" }),
      ),
    );
  }
  if (images.length) {
    nodes.push(
      h(
        "div",
        { class: images.length === 1 ? "tiles single" : "tiles" },
        images.map((src, i) =>
          h(
            "a",
            { href: src, target: "_blank", rel: "noopener", title: `image ${i + 1}` },
            h("img", { src, alt: `image ${i + 1}`, loading: "lazy", "data-role": "tile" }),
            images.length > 1 ? h("span", { class: "tile-n" }, String(i + 1)) : null,
          ),
        ),
      ),
    );
  }
  return nodes;
}

// @ts-check
/**
 * Playground: act as a tenant with one of its keys (kept in this tab's sessionStorage).
 * Submits go to the same public API a tenant's server uses; each task is watched live over
 * its own SSE stream with a stream token minted with the key (POST /v1/stream-tokens).
 */
import { $, busy, fail, fill, h, toast } from "./dom.js";
import { safeUrl } from "./format.js";
import { admin, call, explain, GatewayError } from "./http.js";
import { costMicros, usd } from "./money.js";
import { allTenants, tenantOptions } from "./pickers.js";
import { session } from "./session.js";
import { boot } from "./shell.js";
import { liveStream, TERMINAL } from "./sse.js";
import { taskCard, updateTaskCard } from "./taskcard.js";

const results = $("#results");
/** @type {Map<string, { card: HTMLElement, task: any }>} */
const tasks = new Map();
/** inpaint task id → the image its mask is drawn on */
const maskImages = new Map();
const TASKS_KEY = "playgroundTasks";

boot(async () => {
  const tenants = await allTenants();
  tenantOptions(/** @type {HTMLSelectElement} */ ($("#mint-tenant")), tenants);
  renderKeys();
  $("#key-pick").addEventListener("change", (event) => {
    session.setPlaygroundKey(/** @type {HTMLSelectElement} */ (event.target).value || null);
    refreshAccount();
  });
  $("#forget-key").addEventListener("click", () => {
    const secret = session.playgroundKey();
    const rest = session.playgroundKeys().filter((k) => k.secret !== secret);
    session.set("playgroundKeys", JSON.stringify(rest));
    session.setPlaygroundKey(rest[0]?.secret ?? null);
    renderKeys();
    refreshAccount();
  });
  const paste = /** @type {HTMLFormElement} */ ($("#paste-form"));
  paste.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(paste, async () => {
      const input = /** @type {HTMLInputElement} */ ($("#paste-key"));
      const secret = input.value.trim();
      const account = await call("/v1/account", { auth: secret });
      session.rememberPlaygroundKey({
        secret,
        label: `${account.tenant.name} · ${account.key.name} (${account.key.prefix}…)`,
        tenantId: account.tenant.id,
        keyId: account.key.id,
      });
      input.value = "";
      renderKeys();
      showAccount(account);
    });
  });
  const mint = /** @type {HTMLFormElement} */ ($("#mint-form"));
  mint.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(mint, async () => {
      const tenantId = /** @type {HTMLSelectElement} */ ($("#mint-tenant")).value;
      const tenant = tenants.find((t) => t.id === tenantId);
      const key = await admin(`/admin/tenants/${encodeURIComponent(tenantId)}/keys`, {
        method: "POST",
        body: { name: "console playground" },
      });
      session.rememberPlaygroundKey({
        secret: key.key,
        label: `${tenant?.name ?? tenantId} · ${key.name} (${key.prefix}…)`,
        tenantId,
        keyId: key.id,
      });
      renderKeys();
      toast(`Created key ${key.prefix}… for ${tenant?.name ?? tenantId}; it is kept in this tab only.`, "ok");
      await refreshAccount();
    });
  });
  const imagine = /** @type {HTMLFormElement} */ ($("#imagine-form"));
  imagine.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(imagine, async () => {
      const form = new FormData(imagine);
      /** @type {Record<string, unknown>} */
      const body = { prompt: String(form.get("prompt")).trim(), speed: String(form.get("speed")) };
      if (form.get("version")) body.version = String(form.get("version"));
      if (form.get("size")) body.size = String(form.get("size"));
      await submit("imagine", body);
    });
  });
  setupMaskDialog();
  setupVideoDialog();
  await refreshAccount();
  restoreTasks();
});

function renderKeys() {
  const keys = session.playgroundKeys();
  const select = /** @type {HTMLSelectElement} */ ($("#key-pick"));
  fill(
    select,
    keys.length ? null : h("option", { value: "" }, "no key yet: paste or create one"),
    keys.map((k) => h("option", { value: k.secret }, k.label)),
  );
  const current = session.playgroundKey();
  if (current && keys.some((k) => k.secret === current)) select.value = current;
  else session.setPlaygroundKey(keys[0]?.secret ?? null);
}

const currentKey = () => session.playgroundKey();

async function refreshAccount() {
  const key = currentKey();
  if (!key) {
    fill($("#account"), "Pick, paste or create a tenant key to start.");
    return;
  }
  try {
    showAccount(await call("/v1/account", { auth: key }));
  } catch (error) {
    fill($("#account"), h("span", { class: "error" }, explain(error)));
  }
}

/** @param {any} account */
function showAccount(account) {
  fill(
    $("#account"),
    "Tenant ",
    h("strong", null, account.tenant.name),
    " · balance ",
    h("strong", { id: "play-balance" }, usd(account.tenant.balance_micros)),
    ` · key ${account.key.name} (${account.key.rpm_limit}/min) · spent today ${usd(account.key.spent_today_micros)}`,
  );
}

/**
 * Submits an action with the key in use, adds its card and watches it live.
 * @param {string} action
 * @param {Record<string, unknown>} body
 * @returns {Promise<string | null>} the task id
 */
async function submit(action, body) {
  const key = currentKey();
  if (!key) {
    toast("Pick, paste or create a tenant key first.");
    return null;
  }
  let answer;
  try {
    answer = await call(`/v1/midjourney/generations/${action}`, { method: "POST", body, auth: key });
  } catch (error) {
    fail(error);
    if (error instanceof GatewayError && error.status === 402) refreshAccount();
    return null;
  }
  const { task_id: id, status } = answer.data[0];
  addTask({
    id,
    status: status.toUpperCase(),
    action: action.toUpperCase().replace(/-/g, "_"),
    progress: "0%",
  });
  rememberTask(id);
  watch(id, key);
  refreshAccount();
  return id;
}

/**
 * @param {any} task
 * @returns {{ card: HTMLElement, task: any }}
 */
function addTask(task) {
  const known = tasks.get(task.id);
  if (known) return known;
  results.querySelector(".empty")?.remove();
  const card = taskCard(task, { onButton, extraActions });
  const entry = { card, task };
  tasks.set(task.id, entry);
  results.prepend(card);
  return entry;
}

/** @param {any} task */
function update(task) {
  const entry = tasks.get(task.id) ?? addTask(task);
  entry.task = task;
  updateTaskCard(entry.card, task);
  showSpent();
}

/** @param {string} id @param {string} key */
function watch(id, key) {
  liveStream({
    path: `/v1/midjourney/${id}/events`,
    mintToken: async () =>
      (
        await call("/v1/stream-tokens", {
          method: "POST",
          body: { task_ids: [id], ttl_seconds: 600 },
          auth: key,
        })
      ).token,
    onEvent: (task) => {
      update(task);
      if (TERMINAL.has(task.status)) {
        refreshAccount();
        return "stop";
      }
    },
  });
}

function showSpent() {
  let charged = 0;
  let count = 0;
  for (const { task } of tasks.values()) {
    count++;
    if (task.status !== "FAILURE" && task.status !== "CANCEL" && typeof task.cost === "number") {
      charged += costMicros(task.cost);
    }
  }
  $("#spent").textContent =
    `This session: ${count} task${count === 1 ? "" : "s"}, ${usd(charged)} charged (failed tasks are refunded).`;
}

/** Tasks of this tab survive a reload (ids only; the key in use must still own them). */
function rememberTask(/** @type {string} */ id) {
  const ids = JSON.parse(session.get(TASKS_KEY) ?? "[]");
  session.set(
    TASKS_KEY,
    JSON.stringify([id, ...ids.filter((/** @type {string} */ x) => x !== id)].slice(0, 30)),
  );
}

async function restoreTasks() {
  const key = currentKey();
  if (!key) return;
  const ids = JSON.parse(session.get(TASKS_KEY) ?? "[]").reverse();
  for (const id of ids) {
    try {
      const task = await call(`/v1/midjourney/${id}`, { auth: key });
      update(task);
      if (!TERMINAL.has(task.status)) watch(id, key);
    } catch {
      // Another tenant's task or expired: skip it.
    }
  }
}

// ---------------------------------------------------------------------------------------
// Follow-ups from the task's buttons (task_id + index, as the upstream documents them)

const PANS = /** @type {Record<string, string>} */ ({ "⬅️": "left", "➡️": "right", "⬆️": "up", "⬇️": "down" });

/**
 * @param {any} task
 * @param {{ label: string, customId: string }} button
 * @returns {[string, Record<string, unknown>] | null}
 */
function followUpFor(task, button) {
  const label = button.label.trim();
  const task_id = task.id;
  let m = /^U([1-4])$/.exec(label);
  if (m) return ["upscale", { task_id, index: Number(m[1]) }];
  m = /^V([1-4])$/.exec(label);
  if (m) return ["variation", { task_id, index: Number(m[1]) }];
  if (label === "🔄") return ["reroll", { task_id }];
  if (/^Vary \(Subtle\)$/i.test(label)) return ["low-variation", { task_id, index: 1 }];
  if (/^Vary \(Strong\)$/i.test(label)) return ["high-variation", { task_id, index: 1 }];
  if (/^Vary \(Region\)$/i.test(label)) return ["inpaint", { task_id }];
  m = /^Zoom Out ([\d.]+)x$/i.exec(label);
  if (m) return ["zoom", { task_id, zoom_ratio: Number(m[1]) }];
  if (PANS[label]) return ["pan", { task_id, direction: PANS[label] }];
  return null;
}

/** @param {any} task @param {{ label: string, customId: string }} button */
async function onButton(task, button) {
  const followUp = followUpFor(task, button);
  if (!followUp) {
    toast(`The playground does not know the "${button.label}" button yet.`, "info");
    return;
  }
  const [action, body] = followUp;
  if (action !== "inpaint") body.speed = speed();
  const id = await submit(action, body);
  if (id && action === "inpaint") {
    const image = safeUrl(task.image_urls?.[0]);
    maskImages.set(id, image);
    openMask(id);
  }
}

const speed = () =>
  String(new FormData(/** @type {HTMLFormElement} */ ($("#imagine-form"))).get("speed") ?? "relax");

/** Buttons the task object does not carry: animate a grid, draw the mask of a waiting inpaint. @param {any} task */
function extraActions(task) {
  const nodes = [];
  if (task.status === "SUCCESS" && task.action === "IMAGINE" && (task.image_urls?.length ?? 0) > 0) {
    nodes.push(
      h(
        "button",
        { type: "button", class: "chip", "data-label": "Video", onclick: () => openVideo(task) },
        "🎬 Video…",
      ),
    );
  }
  if (task.status === "MODAL" && task.action === "INPAINT") {
    nodes.push(
      h(
        "button",
        { type: "button", class: "chip", "data-label": "Mask", onclick: () => openMask(task.id) },
        "🖌 Draw mask…",
      ),
    );
  }
  return nodes;
}

// ---------------------------------------------------------------------------------------
// Inpaint: a mask drawn on the image in a canvas (white = repaint), sent as a PNG data URI

/** @type {string | null} */
let maskTaskId = null;
let drawn = false;

function setupMaskDialog() {
  const dialog = /** @type {HTMLDialogElement} */ ($("#mask-dialog"));
  const canvas = /** @type {HTMLCanvasElement} */ ($("#mask-canvas"));
  const image = /** @type {HTMLImageElement} */ ($("#mask-image"));
  const brush = /** @type {HTMLInputElement} */ ($("#mask-brush"));
  const context = /** @type {CanvasRenderingContext2D} */ (canvas.getContext("2d"));
  let drawing = false;
  /** @type {{ x: number, y: number } | null} */
  let last = null;

  const point = (/** @type {PointerEvent} */ event) => {
    const box = canvas.getBoundingClientRect();
    return {
      x: ((event.clientX - box.left) / box.width) * canvas.width,
      y: ((event.clientY - box.top) / box.height) * canvas.height,
    };
  };
  const stroke = (/** @type {{x:number,y:number}} */ from, /** @type {{x:number,y:number}} */ to) => {
    const scale = canvas.width / (canvas.getBoundingClientRect().width || canvas.width);
    context.strokeStyle = "#fff";
    context.fillStyle = "#fff";
    context.lineCap = "round";
    context.lineJoin = "round";
    context.lineWidth = Number(brush.value) * scale;
    context.beginPath();
    context.moveTo(from.x, from.y);
    context.lineTo(to.x, to.y);
    context.stroke();
    drawn = true;
  };
  canvas.addEventListener("pointerdown", (event) => {
    drawing = true;
    canvas.setPointerCapture(event.pointerId);
    last = point(event);
    stroke(last, last);
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!drawing || !last) return;
    const next = point(event);
    stroke(last, next);
    last = next;
  });
  const end = () => {
    drawing = false;
    last = null;
  };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  $("#mask-clear").addEventListener("click", () => {
    context.clearRect(0, 0, canvas.width, canvas.height);
    drawn = false;
  });
  image.addEventListener("load", () => {
    canvas.width = image.naturalWidth || 512;
    canvas.height = image.naturalHeight || 512;
    drawn = false;
  });
  dialog.addEventListener("close", async () => {
    const id = maskTaskId;
    maskTaskId = null;
    if (dialog.returnValue !== "submit" || !id) return;
    if (!drawn && !confirm("No mask drawn: send without one (the upstream then outpaints)?")) return;
    /** @type {Record<string, unknown>} */
    const body = { task_id: id, speed: speed() };
    if (drawn) body.mask_url = canvas.toDataURL("image/png");
    const prompt = /** @type {HTMLInputElement} */ ($("#mask-prompt")).value.trim();
    if (prompt) body.prompt = prompt;
    const key = currentKey();
    try {
      await call("/v1/midjourney/generations/modal", { method: "POST", body, auth: key });
      toast("Mask sent: the region is being repainted.", "ok");
      refreshAccount();
    } catch (error) {
      fail(error);
    }
  });
}

/** @param {string} inpaintTaskId */
function openMask(inpaintTaskId) {
  const dialog = /** @type {HTMLDialogElement} */ ($("#mask-dialog"));
  const src = maskImages.get(inpaintTaskId);
  if (!src) {
    toast("The image of this inpaint task is not known in this tab: run Vary (Region) again.", "info");
    return;
  }
  maskTaskId = inpaintTaskId;
  const image = /** @type {HTMLImageElement} */ ($("#mask-image"));
  const canvas = /** @type {HTMLCanvasElement} */ ($("#mask-canvas"));
  canvas.getContext("2d")?.clearRect(0, 0, canvas.width, canvas.height);
  drawn = false;
  if (image.src !== src) image.src = src;
  dialog.returnValue = "";
  if (!dialog.open) dialog.showModal();
}

// ---------------------------------------------------------------------------------------
// Video from an imagine grid: index 0–3 and batch_size 1, 2 or 4 (cost × batch_size)

/** @type {any} */
let videoSource = null;

function setupVideoDialog() {
  const dialog = /** @type {HTMLDialogElement} */ ($("#video-dialog"));
  dialog.addEventListener("close", async () => {
    const task = videoSource;
    videoSource = null;
    if (dialog.returnValue !== "submit" || !task) return;
    const form = new FormData(/** @type {HTMLFormElement} */ ($("#video-form")));
    /** @type {Record<string, unknown>} */
    const body = {
      task_id: task.id,
      index: Number(form.get("index")),
      batch_size: Number(form.get("batch_size")),
      motion: String(form.get("motion")),
      video_type: String(form.get("video_type")),
    };
    const prompt = String(form.get("prompt") ?? "").trim();
    if (prompt) body.prompt = prompt;
    await submit("video", body);
  });
}

/** @param {any} task */
function openVideo(task) {
  videoSource = task;
  const dialog = /** @type {HTMLDialogElement} */ ($("#video-dialog"));
  dialog.returnValue = "";
  dialog.showModal();
}

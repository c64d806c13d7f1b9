// The page at /: classify an image with a model, watch the server's live measurements
// (GET /v2/ui/live, every second), list the models with their configuration. Read-only:
// it calls /classify and GET routes, never the repository's load or unload.
"use strict";

const KEY_STORAGE = "ferroserve.apiKey";
const POLL_MS = 1000;

const $ = (id) => document.getElementById(id);

/** fetch() with the API key, when one is set, as `Authorization: Bearer <key>`. */
function api(path, options = {}) {
  const headers = new Headers(options.headers || {});
  const key = sessionStorage.getItem(KEY_STORAGE);
  if (key) headers.set("Authorization", "Bearer " + key);
  return fetch(path, { ...options, headers });
}

/** The server's message of a failed response: `{"error": ...}`, else the status. */
async function errorOf(response) {
  const text = await response.text();
  try {
    const json = JSON.parse(text);
    if (json && typeof json.error === "string") return json.error;
  } catch (_) { /* not JSON */ }
  return `${response.status} ${response.statusText}` + (text ? `: ${text}` : "");
}

/** GETs `path` as JSON; throws the server's message on failure. */
async function getJson(path) {
  const response = await api(path);
  if (!response.ok) throw new Error(await errorOf(response));
  return response.json();
}

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "class") node.className = value;
    else node.setAttribute(name, value);
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const fixed = (value, digits) => (value == null ? "–" : Number(value).toFixed(digits));

// ---- API key -------------------------------------------------------------------

function setUpApiKey() {
  const input = $("api-key");
  input.value = sessionStorage.getItem(KEY_STORAGE) || "";
  input.addEventListener("change", () => {
    const key = input.value.trim();
    if (key) sessionStorage.setItem(KEY_STORAGE, key);
    else sessionStorage.removeItem(KEY_STORAGE);
    refreshModels();
  });
}

// ---- Try a model -----------------------------------------------------------------

/** Models that /classify takes images for, by name; filled from the live view. */
let classifying = new Map();

function fillModelChoice(models) {
  const select = $("model");
  const chosen = select.value;
  const names = [...new Map(models.map((m) => [m.name, m])).values()];
  classifying = new Map(names.map((m) => [m.name, m.classifies]));
  const same = select.options.length === names.length &&
    names.every((m, i) => select.options[i].value === m.name);
  if (same) return;
  select.replaceChildren(...names.map((m) =>
    element("option", { value: m.name }, m.classifies ? m.name : `${m.name} (no /classify)`)));
  const first = names.find((m) => m.classifies);
  select.value = classifying.has(chosen) ? chosen : (first ? first.name : "");
  noteModel();
}

function noteModel() {
  const name = $("model").value;
  $("model-note").textContent = !name ? "no model is loaded"
    : classifying.get(name) ? "takes encoded images: POST /v2/models/" + name + "/classify"
    : "takes tensors only: its configuration declares no image preprocessing (preprocess.*), so /classify refuses images";
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = false;
}

function clearResult() {
  $("error").hidden = true;
  $("error").textContent = "";
  $("results").replaceChildren();
  $("timing").hidden = true;
}

function showPreview(blob) {
  const preview = $("preview");
  if (preview.src) URL.revokeObjectURL(preview.src);
  preview.src = URL.createObjectURL(blob);
  preview.hidden = false;
  $("drop-text").hidden = true;
}

/** `queue;dur=1.2, preprocess;dur=3.4, ...` as {queue: 1.2, ...}. */
function parseServerTiming(header) {
  const timing = {};
  for (const part of (header || "").split(",")) {
    const [name, ...params] = part.trim().split(";");
    const duration = params.map((p) => p.trim()).find((p) => p.startsWith("dur="));
    if (name && duration) timing[name.trim()] = Number(duration.slice(4));
  }
  return timing;
}

function showTiming(timing, roundTrip) {
  const rows = { queue: timing.queue, preprocess: timing.preprocess, compute: timing.compute, "round-trip": roundTrip };
  const longest = Math.max(...Object.values(rows).filter((v) => v != null), 1e-9);
  for (const [name, value] of Object.entries(rows)) {
    $("t-" + name).textContent = fixed(value, 2);
    $("b-" + name).style.width = value == null ? "0" : (100 * value / longest).toFixed(1) + "%";
  }
  $("timing").hidden = false;
}

function showClasses(classes) {
  $("results").replaceChildren(...classes.map((c) => {
    const percent = 100 * c.probability;
    const bar = element("span", { class: "bar" });
    bar.style.width = percent.toFixed(1) + "%";
    const label = c.label == null ? `class ${c.index}` : c.label;
    return element("li", {},
      element("div", { class: "row" },
        element("span", { class: "label", title: `${label} (index ${c.index})` }, label),
        element("span", { class: "track" }, bar),
        element("span", { class: "probability" }, percent.toFixed(1) + "%")));
  }));
}

async function classify(blob, name) {
  clearResult();
  showPreview(blob);
  const model = $("model").value;
  if (!model) {
    showError("No model is loaded.");
    return;
  }
  $("status").textContent = `Classifying ${name} with ${model}…`;
  const started = performance.now();
  let response;
  try {
    response = await api(`/v2/models/${encodeURIComponent(model)}/classify?top_k=5`, {
      method: "POST",
      headers: { "Content-Type": "application/octet-stream" },
      body: blob,
    });
  } catch (error) {
    $("status").textContent = "";
    showError(`The request failed: ${error.message}`);
    return;
  }
  if (!response.ok) {
    $("status").textContent = "";
    showError(await errorOf(response));
    return;
  }
  const classes = await response.json();
  const roundTrip = performance.now() - started;
  $("status").textContent = `${name}, top ${classes.length} of ${model}:`;
  showClasses(classes);
  showTiming(parseServerTiming(response.headers.get("Server-Timing")), roundTrip);
}

function setUpTry() {
  $("model").addEventListener("change", noteModel);
  $("file").addEventListener("change", () => {
    const file = $("file").files[0];
    if (file) classify(file, file.name);
    $("file").value = "";
  });
  const drop = $("drop");
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    const file = event.dataTransfer.files[0];
    if (file) classify(file, file.name);
  });
  for (const button of document.querySelectorAll("[data-sample]")) {
    button.addEventListener("click", async () => {
      const name = button.dataset.sample;
      const response = await fetch("/ui/samples/" + name);
      if (!response.ok) {
        showError(await errorOf(response));
        return;
      }
      classify(await response.blob(), name);
    });
  }
}

// ---- Live panel ------------------------------------------------------------------

/** The previous poll: time and successful requests per model, for the rate now. */
let previous = null;

function scheduling(s) {
  const batching = s.dynamic_batching
    ? `batch ≤ ${s.max_batch}, delay ${s.max_queue_delay_us} µs` : `batch ≤ ${s.max_batch}, no dynamic batching`;
  return `${s.tuned ? "tuned" : "configured"}: ${s.instances}×${s.threads_per_instance} threads, ${batching}`;
}

function showLive(live, now) {
  const rates = new Map();
  let total = null;
  if (previous) {
    const seconds = (now - previous.time) / 1000;
    total = 0;
    for (const m of live.models) {
      const key = `${m.name}/${m.version}`;
      if (!previous.success.has(key)) continue;
      const rate = Math.max(0, m.success - previous.success.get(key)) / seconds;
      rates.set(key, rate);
      total += rate;
    }
  }
  previous = { time: now, success: new Map(live.models.map((m) => [`${m.name}/${m.version}`, m.success])) };
  $("live-throughput").textContent = fixed(total, 1);
  $("live-table").tBodies[0].replaceChildren(...live.models.map((m) => {
    const key = `${m.name}/${m.version}`;
    const ratio = m.cache.enabled
      ? (m.cache.hit_ratio == null ? "no lookups" : `${(100 * m.cache.hit_ratio).toFixed(1)}% of ${m.cache.hits + m.cache.misses}`)
      : "off";
    return element("tr", { "data-model": m.name },
      element("td", {}, `${m.name} v${m.version}`),
      element("td", { class: "throughput-now" }, fixed(rates.get(key), 1)),
      element("td", {}, fixed(m.last_minute.throughput, 1)),
      element("td", {}, `${fixed(m.last_minute.p50_ms, 1)} / ${fixed(m.last_minute.p99_ms, 1)}`),
      element("td", {}, `${fixed(m.last_5_minutes.p50_ms, 1)} / ${fixed(m.last_5_minutes.p99_ms, 1)}`),
      element("td", {}, m.queue_depth),
      element("td", {}, ratio),
      element("td", {}, scheduling(m.scheduling)),
      element("td", {}, `${m.success} / ${m.fail}`));
  }));
}

let lastModels = "";

async function poll() {
  try {
    const live = await getJson("/v2/ui/live");
    const state = $("server-state");
    state.textContent = live.ready ? "ready" : "not ready";
    state.className = "badge " + (live.ready ? "ready" : "down");
    showLive(live, performance.now());
    fillModelChoice(live.models);
    const models = JSON.stringify(live.repository);
    if (models !== lastModels) {
      lastModels = models;
      showModels(live.repository, live.models);
    }
  } catch (error) {
    const state = $("server-state");
    state.textContent = "unreachable: " + error.message;
    state.className = "badge down";
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

// ---- Models ----------------------------------------------------------------------

function refreshModels() {
  lastModels = "";
}

function inputsOf(metadata) {
  return metadata.inputs.map((i) => `${i.name} ${i.datatype} [${i.shape.join(", ")}]`).join("; ");
}

function showModels(repository, loaded) {
  const body = $("models-table").tBodies[0];
  body.replaceChildren(...repository.map((entry) => {
    const served = loaded.find((m) => m.name === entry.name && m.version === entry.version);
    const inputs = element("td", {}, "–");
    const config = element("td", {}, "–");
    if (entry.state === "READY") {
      getJson(`/v2/models/${encodeURIComponent(entry.name)}`)
        .then((metadata) => { inputs.textContent = inputsOf(metadata); })
        .catch((error) => { inputs.textContent = error.message; });
      const details = element("details", {}, element("summary", {}, "config.pbtxt as JSON"));
      details.addEventListener("toggle", async () => {
        if (!details.open || details.querySelector("pre")) return;
        const pre = element("pre", { class: "config" }, "loading…");
        details.append(pre);
        try {
          const config = await getJson(`/v2/models/${encodeURIComponent(entry.name)}/config`);
          pre.textContent = JSON.stringify(config, null, 2);
        } catch (error) {
          pre.textContent = error.message;
        }
      });
      config.replaceChildren(details);
    }
    const state = entry.state || "NOT LOADED";
    return element("tr", { "data-model": entry.name },
      element("td", {}, entry.name),
      element("td", {}, entry.version || "–"),
      element("td", { class: "state-" + state, title: entry.reason || "" },
        entry.reason ? `${state}: ${entry.reason}` : state),
      inputs,
      element("td", {}, served ? (served.classifies ? "images" : "no (tensors only)") : "–"),
      config);
  }));
}

setUpApiKey();
setUpTry();
poll();

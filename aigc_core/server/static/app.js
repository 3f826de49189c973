// The aigc web page: the form is built from GET /v1/models, so every plugin's options appear
// without page changes. Plain browser APIs only; nothing is loaded from anywhere else.
"use strict";

const $ = (id) => document.getElementById(id);
let models = [];
let controller = null;
let request = 0;  // which request the progress poll belongs to; a late answer for an old one is ignored

function setStatus(text) { $("status").textContent = text; }
function setState(state) { $("results").dataset.state = state; }

function showError(text) {
  const box = $("error");
  box.textContent = text || "";
  box.hidden = !text;
}

function current() { return models.find((m) => m.name === $("model").value); }

// The model that makes the results: the adapter picked on a base that carries some (served as a
// model of its own, with its own option defaults and progress), else the chosen model itself.
function target() {
  const m = current();
  const picked = m && (m.adapters || []).includes($("adapter").value) ? $("adapter").value : null;
  return picked ? models.find((a) => a.name === picked) || m : m;
}

function adapterValue() {
  const m = current();
  return m && (m.adapters || []).includes($("adapter").value) ? $("adapter").value : null;
}

function el(tag, props = {}, children = []) {
  const node = Object.assign(document.createElement(tag), props);
  for (const child of children) node.append(child);
  return node;
}

// One form field per property of the model's option schema (JSON Schema, from the generator's
// GenerateOptions): its kind, whether null is allowed, its choices and its default.
function fields(m) {
  const schema = m.options || {};
  const kinds = { integer: "int", number: "float", string: "str", boolean: "bool", array: "list", object: "mapping" };
  return Object.entries(schema.properties || {}).map(([name, prop]) => {
    const types = prop.anyOf || [prop];
    const real = types.filter((t) => t.type !== "null");
    const one = real.length === 1 ? real[0] : {};
    const field = { name, default: prop.default === undefined ? null : prop.default, help: prop.description || "",
                    nullable: types.some((t) => t.type === "null"), kind: kinds[one.type] || "any" };
    if (one.enum) Object.assign(field, { kind: "choice", choices: one.enum });
    if (one.items) field.items = kinds[one.items.type] || "any";
    if (one["x-aigc-file"]) Object.assign(field, { kind: "file", accept: prop.contentMediaType || "" });
    return field;
  });
}

// A labelled control: <label for> names it, the option's description is linked as its help.
function fieldFor(opt) {
  const id = `option-${opt.name}`;
  let input;
  if (opt.kind === "bool") {
    input = el("input", { type: "checkbox", checked: opt.default === true });
  } else if (opt.kind === "choice") {
    input = el("select");
    for (const choice of opt.choices) {
      input.appendChild(el("option", { value: JSON.stringify(choice), textContent: String(choice),
                                       selected: choice === opt.default }));
    }
  } else if (opt.kind === "int" || opt.kind === "float") {
    input = el("input", { type: "number", step: opt.kind === "int" ? "1" : "any",
                          value: opt.default === null ? "" : String(opt.default) });
    if (opt.nullable) input.placeholder = "default";
  } else if (opt.kind === "file") {  // sent as the file's content: the server opens no path
    input = document.createElement("input");
    input.type = "file";
    if (opt.accept) input.accept = opt.accept;
  } else if (opt.kind === "str" && !/prompt/i.test(opt.name)) {
    input = el("input", { type: "text", value: opt.default === null ? "" : opt.default });
  } else {
    input = el("textarea");
    if (opt.kind === "list") {
      input.placeholder = "one per line";
      input.value = Array.isArray(opt.default) ? opt.default.join("\n") : "";
    } else if (opt.kind === "str") {
      input.value = opt.default === null ? "" : opt.default;
    } else {
      input.placeholder = "JSON";
      input.value = opt.default === null ? "" : JSON.stringify(opt.default);
    }
  }
  Object.assign(input, { id, name: opt.name });
  input.dataset.option = opt.name;
  const label = el("label", { htmlFor: id, textContent: opt.name });
  const box = el("div", { className: opt.kind === "bool" ? "field check" : "field" },
                 opt.kind === "bool" ? [input, label] : [label, input]);
  if (opt.help) {
    box.appendChild(el("p", { className: "help", id: `${id}-help`, textContent: opt.help }));
    input.setAttribute("aria-describedby", `${id}-help`);
  }
  return box;
}

// A file option's value: the chosen file as a data: URL (base64), which the server decodes.
function fileContent(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

function readOption(opt, input) {
  if (opt.kind === "file") return input.files.length ? fileContent(input.files[0]) : undefined;
  if (opt.kind === "bool") return input.checked;
  if (opt.kind === "choice") return JSON.parse(input.value);
  const raw = input.value;
  if (raw.trim() === "" && (opt.kind !== "str" || opt.nullable)) return opt.nullable ? null : undefined;
  if (opt.kind === "int" || opt.kind === "float") return Number(raw);
  if (opt.kind === "str") return raw;
  if (opt.kind === "list") {
    const lines = raw.split("\n").map((s) => s.trim()).filter((s) => s.length);
    return opt.items === "int" || opt.items === "float" ? lines.map(Number) : lines;
  }
  try { return JSON.parse(raw); } catch (e) { return raw; }
}

async function options() {
  const m = target();
  const out = {};
  for (const opt of fields(m)) {
    const input = document.querySelector(`[data-option="${opt.name}"]`);
    const value = await readOption(opt, input);
    if (value === undefined) continue;
    if (JSON.stringify(value) !== JSON.stringify(opt.default)) out[opt.name] = value;
  }
  return out;
}

function clearResults() {
  stopAnimations();
  $("gallery").replaceChildren();
  $("derived-items").replaceChildren();
  $("derived").hidden = true;
  $("result-tools").hidden = true;
  showError("");
  setState("idle");
}

// The adapter picker: the personalised runs whose adapters this base carries, and "none".
function renderAdapters() {
  const m = current();
  const adapters = (m && m.adapters) || [];
  const picker = $("adapter");
  picker.replaceChildren(el("option", { value: "", textContent: "none (the base alone)" }));
  for (const name of adapters) picker.appendChild(el("option", { value: name, textContent: name }));
  $("adapter-field").hidden = !adapters.length;
}

function renderModel() {
  renderAdapters();
  renderOptions();
}

function renderOptions() {
  const m = target();
  const box = $("options");
  box.replaceChildren(el("legend", { textContent: "Options" }));
  clearResults();  // the previous model's results do not belong under this one
  if (!m) return;
  setStatus(`${m.name} ready`);
  for (const opt of fields(m)) box.appendChild(fieldFor(opt));
  $("options").hidden = !fields(m).length;
  $("model-info").textContent = `${m.modality} · ${m.generator}` + (m.base ? ` · adapter on ${m.base}` : "") +
    (m.stream ? " · streams text" : "") +
    (m.postprocess.length ? ` · post-processing: ${m.postprocess.join(", ")}` : "");
  $("stream-field").hidden = !m.stream;  // only a model that streams offers it
  $("stream").checked = m.stream;
}

function seedValue() {
  const raw = $("seed").value.trim();
  return raw === "" ? null : Number(raw);
}

// -- results ------------------------------------------------------------------------------

// What made the sound of a clip: a trained vocoder run, or Griffin-Lim (the audio plugin says).
function vocoderText(meta) {
  if (meta.vocoder === "griffin-lim") {
    return "vocoder: Griffin-Lim" + (meta.griffin_lim_iters ? ` (${meta.griffin_lim_iters} iterations)` : "");
  }
  if (meta.vocoder) return `vocoder: trained ${meta.vocoder}` + (meta.vocoder_run ? ` (${meta.vocoder_run})` : "");
  return null;
}

function captionParts(meta) {
  const parts = [];
  // a generator may say what its grid shows (a style mix's rows, a walk per row)
  if (meta.kind === "grid") parts.push(typeof meta.caption === "string" ? meta.caption : "grid of the samples");
  else if (typeof meta.caption === "string") parts.push(meta.caption);
  if (meta.index !== undefined && meta.kind !== "grid") parts.push(`#${meta.index}`);
  if (meta.seed !== undefined) parts.push(`seed ${meta.seed}`);
  // the class's name, as the exporters write it; the index only when the run knows no names
  if (meta.class !== undefined && meta.class !== null) parts.push(String(meta.class));
  else if (meta.label !== undefined && meta.label !== null) parts.push(`label ${meta.label}`);
  const vocoder = vocoderText(meta);
  if (vocoder) parts.push(vocoder);
  return parts;
}

function caption(meta, filename, href) {
  const cap = el("figcaption");
  for (const part of captionParts(meta)) cap.appendChild(el("span", { textContent: part }));
  const link = el("a", { className: "download", textContent: "download", download: filename });
  link.setAttribute("aria-label", `download ${filename}`);
  if (href) link.href = href;
  cap.appendChild(link);
  return cap;
}

// Images at a whole multiple of their own pixels (no blur, no squeeze into a fixed box):
// "fit" makes a sample about 128 px on its longer side, and a grid shows its cells at the
// samples' scale, as far as the results column has room (a chosen zoom scrolls in its frame).
function fitZoom(img) {
  return Math.max(1, Math.floor(128 / Math.max(img.naturalWidth, img.naturalHeight)));
}

function zoomFor(img) {
  const chosen = $("zoom").value;
  if (chosen !== "auto") return Number(chosen);
  if (!img.closest("figure").classList.contains("derived")) return fitZoom(img);
  const sample = document.querySelector("#gallery img.result");
  const scale = sample && sample.naturalWidth ? fitZoom(sample) : Infinity;
  const room = Math.min(720, $("results").clientWidth - 16);
  return Math.max(1, Math.min(scale, Math.floor(room / img.naturalWidth)));
}

function sizeImage(img) {
  if (!img.naturalWidth || !img.naturalHeight) return;
  const zoom = zoomFor(img);
  img.style.width = `${img.naturalWidth * zoom}px`;
  img.style.height = `${img.naturalHeight * zoom}px`;
  img.dataset.zoom = String(zoom);
}

function resizeImages() { document.querySelectorAll("#results img.result").forEach(sizeImage); }

function imageFigure(item, href) {
  const img = el("img", { className: "result", alt: `generated image ${item.filename}`, src: href });
  img.addEventListener("load", resizeImages);  // a grid's scale follows the samples'
  return [el("div", { className: "frame" }, [img])];
}

function audioFigure(item, href) {
  const audio = el("audio", { className: "result", controls: true, preload: "auto", src: href });
  audio.setAttribute("aria-label", `generated clip ${item.filename}`);
  const box = el("div", { className: "spectrogram-box" });
  return [audio, box, () => Spectrogram.attach(box, item.data_base64, audio)];  // static/spectrogram.js
}

function textFigure(text) {
  return [el("pre", { className: "sample-text result", textContent: text })];
}

function fileFigure(item) {
  return [el("p", { textContent: `${item.media_type} (no preview on this page)` })];
}

// How each kind of item is shown; an item's media type picks one, an unknown type gets a link.
const RENDERERS = {
  text: (item) => textFigure(item.text),
  image: imageFigure,
  audio: audioFigure,
};

function kindOf(item, display = {}) {
  if (display.render === "download") return "file";
  if (display.render === "text" && item.text === undefined && item.data_base64 !== undefined) {
    item.text = new TextDecoder().decode(Uint8Array.from(atob(item.data_base64), (c) => c.charCodeAt(0)));
  }
  if (RENDERERS[display.render]) return display.render;
  if (item.text !== undefined) return "text";
  const major = (item.media_type || "").split("/")[0];
  return RENDERERS[major] ? major : "file";
}

// How an item is shown is its modality's to say: the model's `display` (render image, audio,
// text or download, an optional note), so a plugin's own modality needs no change here.
function addItem(item, display = {}) {
  const kind = kindOf(item, display);
  const derived = item.derived === true;  // a view of the samples (a grid), not one of them
  const href = item.text !== undefined
    ? URL.createObjectURL(new Blob([item.text], { type: "text/plain" }))
    : `data:${item.media_type};base64,${item.data_base64}`;
  const parts = (RENDERERS[kind] || fileFigure)(item, href);
  const fig = el("figure", { className: `${kind} ${derived ? "derived" : "sample"}` });
  fig.dataset.kind = kind;
  const after = [];
  for (const part of parts) {
    if (typeof part === "function") after.push(part);
    else fig.appendChild(part);
  }
  if (display.note) fig.appendChild(el("div", { className: "note", textContent: display.note }));
  fig.appendChild(caption(item.meta || {}, item.filename, href));
  (derived ? $("derived-items") : $("gallery")).appendChild(fig);
  if (derived) $("derived").hidden = false;
  if (kind === "image") $("result-tools").hidden = false;
  after.forEach((fn) => fn());  // drawn once the figure has its width
  return fig;
}

// Samples that are frames of one animation (meta.animation names it, meta.frame orders it: a walk
// in a latent space) are also played in place, as the GIF the exporter writes for them.
let players = [];

function stopAnimations() {
  players.forEach(clearInterval);
  players = [];
}

function addAnimations(items) {
  const groups = new Map();
  for (const item of items) {
    const meta = item.meta || {};
    if (item.derived || typeof meta.animation !== "string" || !item.data_base64) continue;
    if (!groups.has(meta.animation)) groups.set(meta.animation, []);
    groups.get(meta.animation).push(item);
  }
  for (const [name, frames] of groups) {
    frames.sort((a, b) => (a.meta.frame || 0) - (b.meta.frame || 0));
    const sources = frames.map((f) => `data:${f.media_type};base64,${f.data_base64}`);
    const img = el("img", { className: "result", alt: `${name}: ${frames.length} frames, playing`, src: sources[0] });
    img.addEventListener("load", resizeImages, { once: true });
    let k = 0;
    players.push(setInterval(() => { k = (k + 1) % sources.length; img.src = sources[k]; },
                             frames[0].meta.frame_ms || 100));
    const cap = el("figcaption", {}, [el("span", { textContent: `${name}: ${frames.length} frames, playing` })]);
    const fig = el("figure", { className: "image derived animation" }, [el("div", { className: "frame" }, [img]), cap]);
    fig.dataset.kind = "animation";
    $("derived-items").prepend(fig);
    $("derived").hidden = false;
  }
}

// -- requests -----------------------------------------------------------------------------

async function errorText(resp) {
  try {
    const body = await resp.json();
    return `${resp.status}: ${body.error || JSON.stringify(body)}`;
  } catch (e) {
    return `${resp.status}: ${resp.statusText}`;
  }
}

function plural(count, word) { return `${count} ${word}${count === 1 ? "" : "s"}`; }

async function generate(n) {
  const m = target();
  const body = { n, seed: seedValue(), options: await options() };
  const adapter = adapterValue();
  if (adapter) body.adapter = adapter;  // asked of the base: the server selects its adapter
  setStatus("generating…");
  const t0 = performance.now();
  const mine = request;
  const poll = setInterval(() => showProgress(m, mine), 250);
  let data;
  try {
    const resp = await fetch(`v1/models/${encodeURIComponent(current().name)}/generate`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
      signal: controller.signal,
    });
    if (!resp.ok) throw new Error(await errorText(resp));
    data = await resp.json();
  } finally {
    clearInterval(poll);
    request += 1;  // a poll still in flight belongs to a finished request now
    $("progress").hidden = true;
  }
  data.items.forEach((item) => addItem(item, m.display || {}));
  addAnimations(data.items);
  // results count as shown once their pictures are decoded and sized
  await Promise.all([...document.querySelectorAll("#results img.result")].map((i) => i.decode().catch(() => null)));
  resizeImages();
  const samples = data.items.filter((i) => !i.derived).length;
  const extra = data.items.length - samples;
  const dropped = data.dropped.length ? `, ${data.dropped.length} dropped by quality gates` : "";
  setStatus(`${plural(samples, m.modality + " sample")}${extra ? ` (+ ${plural(extra, "grid")})` : ""}, ` +
            `seed ${data.seed}${dropped}, ${Math.round(performance.now() - t0)} ms`);
}

// The steps the generator reported for the call the model is on (diffusion steps, say).
async function showProgress(m, mine) {
  try {
    const resp = await fetch(`v1/models/${encodeURIComponent(m.name)}/progress`);
    const p = await resp.json();
    if (mine !== request || !resp.ok || p.total == null) return;
    const bar = $("progress");
    bar.max = p.total;
    bar.value = p.done;
    bar.hidden = false;
    bar.dataset.done = p.done;
    setStatus(`generating… ${p.done} of ${p.total} steps`);
  } catch (e) { /* progress is a nicety: the request itself reports errors */ }
}

// One box per text, filled as its pieces arrive; its download is ready when the stream ends.
async function stream(n) {
  const adapter = adapterValue();
  const boxes = [];
  const box = (index, seed) => {
    if (!boxes[index]) {
      const fig = addItem({ text: "", filename: `sample_${String(index).padStart(5, "0")}.txt`,
                            meta: { index, seed } });
      fig.classList.add("streaming");
      boxes[index] = { fig, pre: fig.querySelector("pre"), text: "" };
    }
    return boxes[index];
  };
  setStatus("streaming…");
  const body = { n, seed: seedValue(), options: await options() };
  if (adapter) body.adapter = adapter;
  const resp = await fetch(`v1/models/${encodeURIComponent(current().name)}/stream`, {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body), signal: controller.signal,
  });
  if (!resp.ok) throw new Error(await errorText(resp));
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  const finish = () => boxes.forEach((b) => {
    if (!b) return;
    b.fig.querySelector("a.download").href = URL.createObjectURL(new Blob([b.text], { type: "text/plain" }));
    b.fig.classList.remove("streaming");
  });
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        let event = "message", data = "";
        for (const line of block.split("\n")) {
          if (line.startsWith("event: ")) event = line.slice(7);
          else if (line.startsWith("data: ")) data += line.slice(6);
        }
        const payload = data ? JSON.parse(data) : {};
        if (event === "piece") {
          const b = box(payload.index || 0, payload.seed);  // n boxes, one per text
          b.text += payload.text;
          b.pre.textContent = b.text;
        } else if (event === "error") throw new Error(payload.error);
        else if (event === "done") setStatus(`streamed ${plural(payload.n || 1, "text")} (${payload.pieces} pieces), seed ${payload.seed}`);
        else if (event === "start") {
          for (let i = 0; i < (payload.n || 1); i++) box(i, payload.seed + i);
          setStatus(`streaming ${plural(payload.n || 1, "text")}, seed ${payload.seed}…`);
        }
      }
    }
  } finally {
    finish();  // a stopped stream keeps what arrived, downloadable
  }
}

async function submit(event) {
  event.preventDefault();
  clearResults();
  controller = new AbortController();
  $("generate").disabled = true;
  $("stop").hidden = false;
  setState("running");
  const n = Math.max(1, Math.floor(Number($("n").value || 1)));
  try {
    if (target().stream && $("stream").checked) await stream(n);
    else await generate(n);
    setState("done");
    const top = $("results").getBoundingClientRect().top;
    if (top > window.innerHeight * 0.8) $("results").scrollIntoView({ block: "start" });  // the phone's one column
  } catch (e) {
    if (e.name !== "AbortError") { showError(e.message); setStatus("failed"); setState("failed"); }
    else { setStatus("stopped"); setState("stopped"); }
  } finally {
    $("generate").disabled = false;
    $("stop").hidden = true;
  }
}

async function init() {
  $("form").addEventListener("submit", submit);
  // aborting the fetch closes its connection: the server stops the generation at its next step
  $("stop").addEventListener("click", () => controller && controller.abort());
  $("model").addEventListener("change", () => { if (controller) controller.abort(); renderModel(); });
  $("adapter").addEventListener("change", () => { if (controller) controller.abort(); renderOptions(); });
  $("zoom").addEventListener("change", resizeImages);
  let width = window.innerWidth;
  window.addEventListener("resize", () => { if (window.innerWidth !== width) { width = window.innerWidth; resizeImages(); } });
  try {
    const resp = await fetch("v1/models");
    if (!resp.ok) throw new Error(await errorText(resp));
    const data = await resp.json();
    models = data.models;
    $("n").max = data.limits.max_samples;
    for (const m of models) {
      const about = m.base ? `${m.modality}, adapter on ${m.base}` : m.modality;
      $("model").appendChild(el("option", { value: m.name, textContent: `${m.name} (${about})` }));
    }
    renderModel();
    setStatus(`${plural(models.length, "model")} ready`);
    document.body.dataset.ready = "true";
  } catch (e) {
    showError(`cannot list models: ${e.message}`);
    setStatus("failed");
  }
}

init();

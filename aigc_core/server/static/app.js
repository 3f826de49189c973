// The aigc web page: the form is built from GET /v1/models, so every plugin's options appear
// without page changes. Plain browser APIs only; nothing is loaded from anywhere else.
"use strict";

const $ = (id) => document.getElementById(id);
let models = [];
let controller = null;

function setStatus(text) { $("status").textContent = text; }

function showError(text) {
  const box = $("error");
  box.textContent = text || "";
  box.hidden = !text;
}

function current() { return models.find((m) => m.name === $("model").value); }

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

function fieldFor(opt) {
  const label = document.createElement("label");
  label.textContent = opt.name + " ";
  let input;
  if (opt.kind === "bool") {
    input = document.createElement("input");
    input.type = "checkbox";
    input.checked = opt.default === true;
  } else if (opt.kind === "choice") {
    input = document.createElement("select");
    for (const choice of opt.choices) {
      const o = document.createElement("option");
      o.value = JSON.stringify(choice);
      o.textContent = String(choice);
      o.selected = choice === opt.default;
      input.appendChild(o);
    }
  } else if (opt.kind === "int" || opt.kind === "float") {
    input = document.createElement("input");
    input.type = "number";
    input.step = opt.kind === "int" ? "1" : "any";
    input.value = opt.default === null ? "" : String(opt.default);
    if (opt.nullable) input.placeholder = "default";
  } else if (opt.kind === "file") {  // sent as the file's content: the server opens no path
    input = document.createElement("input");
    input.type = "file";
    if (opt.accept) input.accept = opt.accept;
  } else if (opt.kind === "str" && !/prompt/i.test(opt.name)) {
    input = document.createElement("input");
    input.type = "text";
    input.value = opt.default === null ? "" : opt.default;
  } else {
    input = document.createElement("textarea");
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
  input.name = opt.name;
  input.dataset.option = opt.name;
  label.appendChild(input);
  if (opt.help) {
    const help = document.createElement("div");
    help.className = "help";
    help.textContent = opt.help;
    label.appendChild(help);
  }
  return label;
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
  const m = current();
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
  $("gallery").replaceChildren();
  $("stream-output").textContent = "";
  $("stream-output").hidden = true;
  delete $("stream-output").dataset.done;
  showError("");
}

function renderModel() {
  const m = current();
  const box = $("options");
  box.replaceChildren(Object.assign(document.createElement("legend"), { textContent: "Options" }));
  clearResults();  // the previous model's results do not belong under this one
  if (!m) return;
  setStatus(`${m.name} ready`);
  for (const opt of fields(m)) box.appendChild(fieldFor(opt));
  $("model-info").textContent = `${m.modality} · ${m.generator}` +
    (m.postprocess.length ? ` · post-processing: ${m.postprocess.join(", ")}` : "");
  $("stream-label").hidden = !m.stream;
  $("stream").checked = m.stream;
}

function seedValue() {
  const raw = $("seed").value.trim();
  return raw === "" ? null : Number(raw);
}

function caption(item) {
  const meta = item.meta || {};
  const parts = [];
  if (meta.seed !== undefined) parts.push(`seed ${meta.seed}`);
  if (meta.index !== undefined) parts.push(`#${meta.index}`);
  if (meta.label !== undefined) parts.push(`label ${meta.label}`);
  return parts.join(" · ");
}

function download(item, href) {
  const a = document.createElement("a");
  a.href = href;
  a.download = item.filename;
  a.textContent = "download";
  a.className = "download";
  return a;
}

function addItem(item) {
  const fig = document.createElement("figure");
  const cap = document.createElement("figcaption");
  cap.textContent = caption(item) + " ";
  let href;
  if (item.text !== undefined) {
    fig.className = "text";
    const pre = document.createElement("pre");
    pre.className = "sample-text";
    pre.textContent = item.text;
    fig.appendChild(pre);
    href = URL.createObjectURL(new Blob([item.text], { type: "text/plain" }));
  } else {
    href = `data:${item.media_type};base64,${item.data_base64}`;
    if (item.media_type.startsWith("image/")) {
      const img = document.createElement("img");
      img.className = "sample";
      img.alt = item.filename;
      img.src = href;
      fig.appendChild(img);
    } else {
      fig.className = "audio";
      const audio = document.createElement("audio");
      audio.className = "sample";
      audio.controls = true;
      audio.src = href;
      fig.appendChild(audio);
      fig.appendChild(Spectrogram.figure(item.data_base64, audio));  // static/spectrogram.js
    }
  }
  cap.appendChild(download(item, href));
  fig.appendChild(cap);
  $("gallery").appendChild(fig);
}

async function errorText(resp) {
  try {
    const body = await resp.json();
    return `${resp.status}: ${body.error || JSON.stringify(body)}`;
  } catch (e) {
    return `${resp.status}: ${resp.statusText}`;
  }
}

async function generate() {
  const m = current();
  const body = { n: Number($("n").value || 1), seed: seedValue(), options: await options() };
  setStatus("generating…");
  const t0 = performance.now();
  const poll = setInterval(() => showProgress(m), 250);
  let resp;
  try {
    resp = await fetch(`v1/models/${encodeURIComponent(m.name)}/generate`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
      signal: controller.signal,
    });
  } finally {
    clearInterval(poll);
    $("progress").hidden = true;
  }
  if (!resp.ok) throw new Error(await errorText(resp));
  const data = await resp.json();
  $("gallery").replaceChildren();
  data.items.forEach(addItem);
  const dropped = data.dropped.length ? `, ${data.dropped.length} dropped by quality gates` : "";
  setStatus(`${data.items.length} ${m.modality} item(s), seed ${data.seed}${dropped}, ` +
            `${Math.round(performance.now() - t0)} ms`);
}

// The steps the generator reported for the call the model is on (diffusion steps, say).
async function showProgress(m) {
  try {
    const resp = await fetch(`v1/models/${encodeURIComponent(m.name)}/progress`);
    const p = await resp.json();
    if (!resp.ok || p.total == null) return;
    const bar = $("progress");
    bar.max = p.total;
    bar.value = p.done;
    bar.hidden = false;
    bar.dataset.done = p.done;
    setStatus(`generating… ${p.done} of ${p.total} steps`);
  } catch (e) { /* progress is a nicety: the request itself reports errors */ }
}

async function stream() {
  const m = current();
  const out = $("stream-output");
  out.textContent = "";
  out.hidden = false;
  setStatus("streaming…");
  const resp = await fetch(`v1/models/${encodeURIComponent(m.name)}/stream`, {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ seed: seedValue(), options: await options() }), signal: controller.signal,
  });
  if (!resp.ok) throw new Error(await errorText(resp));
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
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
      if (event === "piece") out.textContent += payload.text;
      else if (event === "error") throw new Error(payload.error);
      else if (event === "done") setStatus(`streamed ${payload.pieces} pieces, seed ${payload.seed}`);
      else if (event === "start") setStatus(`streaming, seed ${payload.seed}…`);
    }
  }
  out.dataset.done = "true";
}

async function submit(event) {
  event.preventDefault();
  showError("");
  $("stream-output").hidden = true;
  delete $("stream-output").dataset.done;
  controller = new AbortController();
  $("generate").disabled = true;
  $("stop").hidden = false;
  try {
    if (current().stream && $("stream").checked) await stream();
    else await generate();
  } catch (e) {
    if (e.name !== "AbortError") { showError(e.message); setStatus("failed"); }
    else setStatus("stopped");
  } finally {
    $("generate").disabled = false;
    $("stop").hidden = true;
  }
}

async function init() {
  $("form").addEventListener("submit", submit);
  $("stop").addEventListener("click", () => controller && controller.abort());
  $("model").addEventListener("change", () => { if (controller) controller.abort(); renderModel(); });
  try {
    const resp = await fetch("v1/models");
    if (!resp.ok) throw new Error(await errorText(resp));
    const data = await resp.json();
    models = data.models;
    $("n").max = data.limits.max_samples;
    for (const m of models) {
      const o = document.createElement("option");
      o.value = m.name;
      o.textContent = `${m.name} (${m.modality})`;
      $("model").appendChild(o);
    }
    renderModel();
    setStatus(`${models.length} model(s) ready`);
    document.body.dataset.ready = "true";
  } catch (e) {
    showError(`cannot list models: ${e.message}`);
    setStatus("failed");
  }
}

init();

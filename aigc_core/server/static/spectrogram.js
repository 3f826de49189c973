// A spectrogram under each generated clip, as wide as its box, computed in the browser from the WAV the server
// sent (16-bit PCM): time in seconds, frequency in Hz, a dB colour bar, and a playhead that
// follows the audio player. Plain browser APIs; the same analysis as the exporter's PNGs
// (about 32 ms Hann frames, an eighth-window hop, 80 dB below the loudest bin).
"use strict";

const Spectrogram = (() => {
  const RANGE_DB = 80;
  // stops of matplotlib's "magma" map, so the page and the exported PNGs read alike
  const MAGMA = [[0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99], [212, 72, 66],
                 [245, 125, 21], [250, 193, 39], [252, 253, 191]];

  function colour(level) {
    const x = Math.min(Math.max(level, 0), 1) * (MAGMA.length - 1);
    const i = Math.min(Math.floor(x), MAGMA.length - 2);
    const t = x - i;
    return MAGMA[i].map((c, k) => Math.round(c + t * (MAGMA[i + 1][k] - c)));
  }

  function decodeWav(base64) {
    const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
    const view = new DataView(bytes.buffer);
    let rate = 0, pos = 12;
    while (pos + 8 <= bytes.length) {
      const id = String.fromCharCode(...bytes.subarray(pos, pos + 4));
      const size = view.getUint32(pos + 4, true);
      if (id === "fmt ") rate = view.getUint32(pos + 12, true);
      if (id === "data") {
        const n = Math.floor(Math.min(size, bytes.length - pos - 8) / 2);
        const samples = new Float32Array(n);
        for (let i = 0; i < n; i++) samples[i] = view.getInt16(pos + 8 + 2 * i, true) / 32768;
        return { rate, samples };
      }
      pos += 8 + size + (size % 2);
    }
    return { rate, samples: new Float32Array(0) };
  }

  function fft(re, im) {  // in place, radix 2
    const n = re.length;
    for (let i = 1, j = 0; i < n; i++) {
      let bit = n >> 1;
      for (; j & bit; bit >>= 1) j ^= bit;
      j ^= bit;
      if (i < j) { [re[i], re[j]] = [re[j], re[i]]; [im[i], im[j]] = [im[j], im[i]]; }
    }
    for (let len = 2; len <= n; len <<= 1) {
      const ang = -2 * Math.PI / len;
      for (let i = 0; i < n; i += len) {
        for (let k = 0; k < len / 2; k++) {
          const wr = Math.cos(ang * k), wi = Math.sin(ang * k);
          const a = i + k, b = a + len / 2;
          const xr = re[b] * wr - im[b] * wi, xi = re[b] * wi + im[b] * wr;
          re[b] = re[a] - xr; im[b] = im[a] - xi; re[a] += xr; im[a] += xi;
        }
      }
    }
  }

  function analyse(samples, rate) {
    const nfft = 2 ** Math.round(Math.log2(0.032 * rate));
    const hop = Math.max(1, nfft / 8);
    const frames = Math.max(1, 1 + Math.floor((samples.length - nfft) / hop));
    const bins = nfft / 2 + 1;
    const db = new Float32Array(frames * bins);
    let top = -120 + RANGE_DB;
    for (let f = 0; f < frames; f++) {
      const re = new Float64Array(nfft), im = new Float64Array(nfft);
      for (let i = 0; i < nfft; i++) {
        const s = samples[f * hop + i] || 0;
        re[i] = s * (0.5 - 0.5 * Math.cos(2 * Math.PI * i / (nfft - 1)));
      }
      fft(re, im);
      for (let k = 0; k < bins; k++) {
        const v = 10 * Math.log10(Math.max(re[k] * re[k] + im[k] * im[k], 1e-12));
        db[f * bins + k] = v;
        if (v > top) top = v;
      }
    }
    return { db, frames, bins, top };
  }

  function ticks(max, count) {
    const raw = max / count, mag = 10 ** Math.floor(Math.log10(raw));
    const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw);
    const out = [];
    for (let v = 0; v <= max + 1e-9; v += step) out.push(+v.toFixed(6));
    return out;
  }

  // draw into a canvas at its size in device pixels: plot area, Hz axis on the left, seconds
  // below, colour bar on the right; margins and text scale with the device pixel ratio
  function draw(canvas, analysis, scale) {
    const { db, frames, bins, top, rate, samples } = analysis;
    const ctx = canvas.getContext("2d");
    const W = canvas.width, H = canvas.height, px = (v) => Math.round(v * scale);
    const L = px(52), R = px(66), T = px(8), B = px(34), pw = W - L - R, ph = H - T - B;
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, W, H);
    if (pw < 8 || ph < 8) return null;
    const img = ctx.createImageData(pw, ph);
    for (let y = 0; y < ph; y++) {
      const k = Math.floor((ph - 1 - y) * bins / ph);
      for (let x = 0; x < pw; x++) {
        const f = Math.floor(x * frames / pw);
        const [r, g, b] = colour((db[f * bins + k] - top + RANGE_DB) / RANGE_DB);
        const o = 4 * (y * pw + x);
        img.data[o] = r; img.data[o + 1] = g; img.data[o + 2] = b; img.data[o + 3] = 255;
      }
    }
    ctx.putImageData(img, L, T);
    ctx.fillStyle = "#222";
    ctx.strokeStyle = "#222";
    ctx.lineWidth = Math.max(1, scale);
    ctx.font = `${px(12)}px system-ui, sans-serif`;
    const seconds = samples.length / rate, nyquist = rate / 2;
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (const hz of ticks(nyquist, 4)) {
      const y = T + ph - hz / nyquist * ph;
      ctx.fillText(String(hz), L - px(5), y);
      ctx.beginPath(); ctx.moveTo(L - px(3), y); ctx.lineTo(L, y); ctx.stroke();
    }
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    for (const s of ticks(seconds, Math.max(2, Math.min(8, Math.floor(pw / px(70)))))) {
      const x = L + s / seconds * pw;
      ctx.fillText(String(s), x, T + ph + px(4));
      ctx.beginPath(); ctx.moveTo(x, T + ph); ctx.lineTo(x, T + ph + px(3)); ctx.stroke();
    }
    ctx.fillText("time (s)", L + pw / 2, T + ph + px(18));
    ctx.save();
    ctx.translate(px(11), T + ph / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.fillText("Hz", 0, -px(6));
    ctx.restore();
    const bx = W - R + px(10), bw = px(10);
    for (let y = 0; y < ph; y++) {
      const [r, g, b] = colour(1 - y / ph);
      ctx.fillStyle = `rgb(${r},${g},${b})`;
      ctx.fillRect(bx, T + y, bw, 1);
    }
    ctx.fillStyle = "#222";
    ctx.textAlign = "left";
    ctx.textBaseline = "middle";
    for (const d of [0, -20, -40, -60, -80]) ctx.fillText(d ? String(d) : "0 dB", bx + bw + px(3), T - d / RANGE_DB * ph);
    return { L, T, pw, ph, seconds, image: ctx.getImageData(0, 0, W, H) };
  }

  // Redrawn at the width its box has: full width on any screen, axes text at a legible size.
  const resized = typeof ResizeObserver === "function"
    ? new ResizeObserver((entries) => entries.forEach((e) => e.target.spectrogram && e.target.spectrogram.fit()))
    : null;

  // a canvas under the player, as wide as ``box``; the playhead follows playback
  function attach(box, base64, audio) {
    const { rate, samples } = decodeWav(base64);
    const canvas = document.createElement("canvas");
    canvas.className = "spectrogram";
    canvas.setAttribute("role", "img");
    canvas.setAttribute("aria-label", "spectrogram: time in seconds, frequency in Hz");
    box.appendChild(canvas);
    if (!rate || !samples.length) { canvas.hidden = true; return canvas; }
    const analysis = { ...analyse(samples, rate), rate, samples };
    let drawn = null, width = 0;
    const playhead = () => {
      if (!drawn) return;
      const ctx = canvas.getContext("2d");
      ctx.putImageData(drawn.image, 0, 0);
      if (audio.currentTime > 0) {
        const x = drawn.L + Math.min(audio.currentTime / drawn.seconds, 1) * drawn.pw;
        ctx.strokeStyle = "#3cf";
        ctx.lineWidth = Math.max(1, window.devicePixelRatio || 1);
        ctx.beginPath(); ctx.moveTo(x, drawn.T); ctx.lineTo(x, drawn.T + drawn.ph); ctx.stroke();
      }
      if (!audio.paused) requestAnimationFrame(playhead);
    };
    const fit = () => {
      const css = Math.floor(box.clientWidth);
      if (!css || css === width) return;
      width = css;
      const scale = window.devicePixelRatio || 1, height = Math.round(Math.min(240, Math.max(160, css * 0.4)));
      canvas.width = Math.round(css * scale);
      canvas.height = Math.round(height * scale);
      canvas.style.width = css + "px";
      canvas.style.height = height + "px";
      drawn = draw(canvas, analysis, scale);
      playhead();
    };
    box.spectrogram = { fit };
    audio.addEventListener("play", playhead);
    audio.addEventListener("seeked", playhead);
    audio.addEventListener("ended", playhead);
    fit();
    if (resized) resized.observe(box);
    return canvas;
  }

  return { attach, decodeWav, analyse };
})();

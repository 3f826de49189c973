// A spectrogram beside each generated clip, computed in the browser from the WAV the server
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

  // draw into a canvas: plot area, Hz axis on the left, seconds below, colour bar on the right
  function draw(canvas, base64) {
    const { rate, samples } = decodeWav(base64);
    if (!rate || !samples.length) return null;
    const { db, frames, bins, top } = analyse(samples, rate);
    const ctx = canvas.getContext("2d");
    const W = canvas.width, H = canvas.height;
    const L = 52, R = 62, T = 8, B = 34, pw = W - L - R, ph = H - T - B;
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, W, H);
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
    ctx.font = "11px system-ui, sans-serif";
    const seconds = samples.length / rate, nyquist = rate / 2;
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (const hz of ticks(nyquist, 4)) {
      const y = T + ph - hz / nyquist * ph;
      ctx.fillText(String(hz), L - 5, y);
      ctx.beginPath(); ctx.moveTo(L - 3, y); ctx.lineTo(L, y); ctx.stroke();
    }
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    for (const s of ticks(seconds, 5)) {
      const x = L + s / seconds * pw;
      ctx.fillText(String(s), x, T + ph + 4);
      ctx.beginPath(); ctx.moveTo(x, T + ph); ctx.lineTo(x, T + ph + 3); ctx.stroke();
    }
    ctx.fillText("time (s)", L + pw / 2, T + ph + 18);
    ctx.save();
    ctx.translate(11, T + ph / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.fillText("Hz", 0, -6);
    ctx.restore();
    const bx = W - R + 10, bw = 10;
    for (let y = 0; y < ph; y++) {
      const [r, g, b] = colour(1 - y / ph);
      ctx.fillStyle = `rgb(${r},${g},${b})`;
      ctx.fillRect(bx, T + y, bw, 1);
    }
    ctx.fillStyle = "#222";
    ctx.textAlign = "left";
    ctx.textBaseline = "middle";
    for (const d of [0, -20, -40, -60, -80]) ctx.fillText(String(d), bx + bw + 3, T - d / RANGE_DB * ph);
    ctx.textBaseline = "top";
    ctx.fillText("dB", bx, T + ph + 4);
    return { L, T, pw, ph, seconds, image: ctx.getImageData(0, 0, W, H) };
  }

  // a figure with the player above the spectrogram; the playhead follows playback
  function figure(base64, audio) {
    const canvas = document.createElement("canvas");
    canvas.width = 520;
    canvas.height = 220;
    canvas.className = "spectrogram";
    canvas.setAttribute("role", "img");
    canvas.setAttribute("aria-label", "spectrogram: time in seconds, frequency in Hz");
    const drawn = draw(canvas, base64);
    if (drawn) {
      const ctx = canvas.getContext("2d");
      const playhead = () => {
        ctx.putImageData(drawn.image, 0, 0);
        if (audio.currentTime > 0) {
          const x = drawn.L + Math.min(audio.currentTime / drawn.seconds, 1) * drawn.pw;
          ctx.strokeStyle = "#3cf";
          ctx.beginPath(); ctx.moveTo(x, drawn.T); ctx.lineTo(x, drawn.T + drawn.ph); ctx.stroke();
        }
        if (!audio.paused) requestAnimationFrame(playhead);
      };
      audio.addEventListener("play", playhead);
      audio.addEventListener("seeked", playhead);
      audio.addEventListener("ended", playhead);
    }
    return canvas;
  }

  return { figure, decodeWav, analyse };
})();

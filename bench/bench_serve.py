"""Load test of ``aigc serve`` on loopback: bounded in time and count, stops by itself.

    .venv/bin/python bench/bench_serve.py [--duration 60] [--clients 16] [--ratio-duration 15]

1. Trains a tiny GAN (digits, 8x8) and, when the aigc-text plugin is installed, a tiny causal LM
   (else a fake text model, said so in the output); serves both from one ``aigc serve`` process.
2. ``--clients`` concurrent clients for ``--duration`` seconds, alternating GAN (n=4, no seed)
   and text (n=1, 16 new tokens) requests: requests/s, p50/p95/p99 latency, errors by status,
   and the server's RSS before and after.
3. Micro-batching against one request at a time: the same GAN load against two fresh servers,
   ``--max-batch 16`` and ``--max-batch 1``; prints samples/s of each and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
MAX_REQUESTS = 200_000  # a hard cap beside the time limit


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_runs(work: Path) -> tuple[list[str], str]:
    sys.path.insert(0, str(ROOT / "tests"))  # the test helpers: tiny runs and the fake text model
    from server_kit import fake_text_run, tiny_gan_run, tiny_text_run

    specs = [f"gan={tiny_gan_run(work / 'gan')}"]
    text_dir = tiny_text_run(work / "text", name="text", steps=50, vocab_size=512, limit=200, max_chars=200_000)
    if text_dir is not None:
        return specs + [f"text={text_dir}"], "causal-lm (aigc-text, debug size)"
    return specs + [f"text={fake_text_run(work / 'fake')}"], "FAKE text model (aigc-text not installed)"


class Server:
    def __init__(self, specs: list[str], *extra: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if k != "AIGC_API_KEY"}
        if "FAKE" in " ".join(specs) or any("fake" in s for s in specs):
            env["AIGC_SERVE_FAKE_TEXT"] = "1"
        cmd = [sys.executable, "-c", SERVE_SNIPPET, *specs, "--host", "127.0.0.1", "--port", str(self.port),
               "--log-level", "warning", "--queue-size", "256", *extra]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env)
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the server did not start")
            time.sleep(0.3)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


# The fake text model lives in the test helpers; register it in the server process when used.
SERVE_SNIPPET = """
import os, sys
if os.environ.get("AIGC_SERVE_FAKE_TEXT"):
    sys.path.insert(0, "tests")
    from server_kit import register_fake_text
    register_fake_text()
from aigc_core.cli import main
sys.exit(main(["serve", *sys.argv[1:]]))
"""


async def load(url: str, clients: int, duration: float, requests: list[tuple[str, dict]]) -> dict:
    latencies: dict[str, list[float]] = {name: [] for name, _ in requests}
    statuses: dict[int, int] = {}
    samples = 0
    sent = 0
    stop_at = time.perf_counter() + duration

    async def client(k: int) -> None:
        nonlocal samples, sent
        async with httpx.AsyncClient(base_url=url, timeout=120) as c:
            i = k
            while time.perf_counter() < stop_at and sent < MAX_REQUESTS:
                name, body = requests[i % len(requests)]
                i += 1
                sent += 1
                t0 = time.perf_counter()
                try:
                    r = await c.post(f"/v1/models/{name}/generate", json=body)
                    code = r.status_code
                except httpx.HTTPError:
                    code = -1
                latencies[name].append(time.perf_counter() - t0)
                statuses[code] = statuses.get(code, 0) + 1
                if code == 200:
                    samples += body["n"]
                elif code == 429:
                    await asyncio.sleep(0.05)

    started = time.perf_counter()
    await asyncio.gather(*(client(k) for k in range(clients)))
    elapsed = time.perf_counter() - started
    return {"elapsed": elapsed, "latencies": latencies, "statuses": statuses, "samples": samples}


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))] * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--ratio-duration", type=float, default=15.0)
    ap.add_argument("--clients", type=int, default=16)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="aigc-bench-serve-"))
    specs, text_kind = make_runs(work)
    print(f"text model: {text_kind}; clients: {args.clients}; machine: {os.cpu_count()} CPUs, shared")

    gan = ("gan", {"n": 4})
    text = ("text", {"n": 1, "options": {"max_new_tokens": 16, "prompts": ["The "]}}
            if "causal-lm" in text_kind else {"n": 1, "options": {"max_new_tokens": 16}})
    server = Server(specs)
    try:
        asyncio.run(load(server.url, 4, 3.0, [gan, text]))  # warm up: first calls, lazy imports
        before = rss_mib(server.proc.pid)
        result = asyncio.run(load(server.url, args.clients, args.duration, [gan, text]))
        after = rss_mib(server.proc.pid)
    finally:
        server.stop()
    total = sum(result["statuses"].values())
    errors_5xx = sum(v for k, v in result["statuses"].items() if k >= 500 or k < 0)
    print(f"mixed load {args.duration:g} s: {total} requests, {total / result['elapsed']:.1f} req/s, "
          f"statuses {dict(sorted(result['statuses'].items()))}, 5xx/transport errors {errors_5xx}")
    for name, lat in result["latencies"].items():
        print(f"  {name:5s} {len(lat):6d} req  p50 {pct(lat, 50):7.1f} ms  p95 {pct(lat, 95):7.1f} ms  "
              f"p99 {pct(lat, 99):7.1f} ms")
    print(f"  server RSS before {before:.0f} MiB, after {after:.0f} MiB ({after - before:+.0f} MiB)")

    rates = {}
    for label, extra in (("micro-batched (--max-batch 16)", ()), ("one at a time (--max-batch 1)", ("--max-batch", "1"))):
        server = Server(specs[:1], *extra)
        try:
            asyncio.run(load(server.url, 4, 2.0, [("gan", {"n": 1})]))
            r = asyncio.run(load(server.url, args.clients, args.ratio_duration, [("gan", {"n": 1})]))
        finally:
            server.stop()
        rates[label] = r["samples"] / r["elapsed"]
        lat = r["latencies"]["gan"]
        print(f"GAN n=1, {args.clients} clients, {label}: {rates[label]:.1f} req/s, "
              f"p50 {pct(lat, 50):.1f} ms, p99 {pct(lat, 99):.1f} ms, statuses {r['statuses']}")
    a, b = rates.values()
    print(f"micro-batching throughput ratio: {a / b:.2f}x")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Slowloris benchmark for `steward up` (release build, embedded SQLite).

Starts the daemon, then holds N connections from several loopback addresses (127.0.0.2, …),
each sending a request line and then a header line every second, opened again as soon as the
server closes it. Meanwhile, every 100 ms, a fresh connection from 127.0.0.1 asks /healthz
and one from 127.0.0.250 asks /api/v1/whoami with the admin key. Prints, for each, how many
were answered within 5 s and the latency p50/p99/max; then what the daemon counted
(evictions, refusals).

Usage: python3 bench/slowloris.py [--binary PATH] [--connections 1100] [--addresses 5]
                                  [--seconds 20]
Build first: cargo build --release
"""

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


async def attacker(port: int, source: str, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0)), 2
            )
            writer.write(b"GET /healthz HTTP/1.1\r\n")
            await writer.drain()
            while not stop.is_set() and not reader.at_eof():
                await asyncio.sleep(1)
                writer.write(b"X-Slow: y\r\n")
                await writer.drain()
        except (OSError, asyncio.TimeoutError):
            pass
        await asyncio.sleep(0.05)


async def ask(port: int, source: str, request: bytes) -> float | None:
    """Milliseconds to a 200 status line on a fresh connection, or None."""
    started = time.perf_counter()
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0)), 5
        )
        writer.write(request)
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), 5)
        writer.close()
    except (OSError, asyncio.TimeoutError):
        return None
    if not line.startswith(b"HTTP/1.1 200"):
        return None
    return (time.perf_counter() - started) * 1000


def summary(name: str, samples: list) -> str:
    answered = sorted(s for s in samples if s is not None)
    line = f"{name:<22} {len(answered)}/{len(samples)} answered within 5 s"
    if answered:
        p99 = answered[max(0, int(len(answered) * 0.99) - 1)]
        line += (
            f"  p50 {statistics.median(answered):6.1f} ms  p99 {p99:6.1f} ms"
            f"  max {answered[-1]:6.1f} ms"
        )
    return line


async def run(port: int, key: str, args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    attackers = [
        asyncio.create_task(attacker(port, f"127.0.0.{2 + i % args.addresses}", stop))
        for i in range(args.connections)
    ]
    await asyncio.sleep(3)
    health = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    keyed = (
        "GET /api/v1/whoami HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        f"Authorization: Bearer {key}\r\n\r\n"
    ).encode()
    healths, keyeds = [], []
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline:
        h, k = await asyncio.gather(
            ask(port, "127.0.0.1", health), ask(port, "127.0.0.250", keyed)
        )
        healths.append(h)
        keyeds.append(k)
        await asyncio.sleep(0.1)
    stop.set()
    for task in attackers:
        task.cancel()
    await asyncio.gather(*attackers, return_exceptions=True)
    print(f"{args.connections} slow connections from {args.addresses} addresses, {args.seconds} s:")
    print(summary("/healthz", healths))
    print(summary("/api/v1/whoami (keyed)", keyeds))


def metrics(port: int, key: str) -> str:
    import urllib.request

    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {key}"}
    )
    text = urllib.request.urlopen(request, timeout=10).read().decode()
    wanted = ("steward_http_connections_evicted_total", "steward_http_connections_refused_total")
    return "\n".join(line for line in text.splitlines() if line.startswith(wanted))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", default=os.path.join(ROOT, "target/release/steward"))
    parser.add_argument("--connections", type=int, default=1100)
    parser.add_argument("--addresses", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        daemon = subprocess.Popen(
            [
                args.binary, "up",
                "--config", os.path.join(ROOT, "examples/vizion/steward.toml"),
                "--data-dir", os.path.join(work, "data"),
                "--listen", "127.0.0.1:0",
                "--log-level", "warn",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            key, port = None, None
            for line in daemon.stdout:
                if line.startswith("admin key (shown once, store it now): "):
                    key = line.split(": ", 1)[1].strip()
                match = re.match(r"steward listening on http://127\.0\.0\.1:(\d+)", line)
                if match:
                    port = int(match.group(1))
                    break
            if key is None or port is None:
                raise SystemExit("the daemon printed no key or address")
            asyncio.run(run(port, key, args))
            print(metrics(port, key))
        finally:
            daemon.terminate()
            daemon.wait(timeout=30)


if __name__ == "__main__":
    main()

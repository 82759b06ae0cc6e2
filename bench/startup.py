#!/usr/bin/env python3
"""Start-up benchmark for `steward up` (release build, embedded SQLite).

Measures, over several runs, the time from process spawn to the first `/readyz` 200 (on a fresh
data directory, which creates and migrates the database, and on an existing one), the idle RSS
once ready, and the binary's size. Prints medians.

Usage: python3 bench/startup.py [--runs N] [--binary PATH] [--config PATH]
Build first: cargo build --release
"""

import argparse
import http.client
import os
import shutil
import statistics
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def ready(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        conn.request("GET", "/readyz")
        ok = conn.getresponse().status == 200
        conn.close()
        return ok
    except OSError:
        return False


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def one_run(binary: str, config: str, data_dir: str, idle_seconds: float):
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEWARD_")}
    env["STEWARD_LOG"] = "warn"
    started = time.perf_counter()
    proc = subprocess.Popen(
        [binary, "up", "--config", config, "--data-dir", data_dir, "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        text=True,
    )
    try:
        # A fresh data directory prints the first admin key before the URL.
        line = proc.stdout.readline()
        while line and not line.startswith("steward listening on "):
            line = proc.stdout.readline()
        port = int(line.strip().rsplit(":", 1)[1])
        while not ready(port):
            if time.perf_counter() - started > 10:
                raise RuntimeError("not ready within 10 s")
            time.sleep(0.0005)
        elapsed_ms = (time.perf_counter() - started) * 1000
        time.sleep(idle_seconds)
        rss = rss_mib(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return elapsed_ms, rss


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--binary", default=os.path.join(ROOT, "target/release/steward"))
    parser.add_argument("--config", default=os.path.join(ROOT, "examples/vizion/steward.toml"))
    parser.add_argument("--idle", type=float, default=2.0, help="seconds to idle before reading RSS")
    args = parser.parse_args()

    cold, warm, rss = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            data = os.path.join(tmp, f"run{i}")
            ms, _ = one_run(args.binary, args.config, data, 0)
            cold.append(ms)
            ms, mib = one_run(args.binary, args.config, data, args.idle)
            warm.append(ms)
            rss.append(mib)
            shutil.rmtree(data)

    size_mib = os.path.getsize(args.binary) / (1024 * 1024)
    print(f"runs: {args.runs}  binary: {args.binary}")
    print(f"start to /readyz, fresh data dir: median {statistics.median(cold):.1f} ms  (min {min(cold):.1f}, max {max(cold):.1f})")
    print(f"start to /readyz, existing data:  median {statistics.median(warm):.1f} ms  (min {min(warm):.1f}, max {max(warm):.1f})")
    print(f"idle RSS after {args.idle:.0f} s:           median {statistics.median(rss):.1f} MiB (min {min(rss):.1f}, max {max(rss):.1f})")
    print(f"binary size:                      {size_mib:.1f} MiB")


if __name__ == "__main__":
    main()

"""Small helpers shared by the benchmarks: timing, medians, alternating A/B runs."""

from __future__ import annotations

import statistics
import subprocess
import time
from collections.abc import Callable, Sequence


def time_cmd(argv: Sequence[str], **kw) -> float:  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
    return time.perf_counter() - t


def alternate(a: Callable[[], float], b: Callable[[], float], n: int, warmup: int = 2) -> tuple[list[float], list[float]]:
    """Run A and B alternately n times each (after warm-up), so drift hits both alike."""
    for _ in range(warmup):
        a()
        b()
    xs, ys = [], []
    for i in range(n):
        if i % 2:
            ys.append(b())
            xs.append(a())
        else:
            xs.append(a())
            ys.append(b())
    return xs, ys


def report(name_a: str, xs: list[float], name_b: str, ys: list[float], target: str = "") -> None:
    ma, mb = statistics.median(xs), statistics.median(ys)
    print(f"{name_a:40} median {ma * 1000:8.1f} ms  (p10 {sorted(xs)[len(xs) // 10] * 1000:.1f}, p90 {sorted(xs)[len(xs) * 9 // 10] * 1000:.1f})")
    print(f"{name_b:40} median {mb * 1000:8.1f} ms  (p10 {sorted(ys)[len(ys) // 10] * 1000:.1f}, p90 {sorted(ys)[len(ys) * 9 // 10] * 1000:.1f})")
    print(f"ratio {name_a} / {name_b}: {ma / mb:.2f}x   (difference {(ma - mb) * 1000:+.1f} ms) {target}")

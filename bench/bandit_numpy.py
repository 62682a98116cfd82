#!/usr/bin/env python3
"""Peer baseline for `laser-bench bandit`: disjoint LinUCB in numpy with Sherman-Morrison.

The same K = 4 arms, alpha = 0.1, lambda = 1, contexts and rewards as laser-bench (SplitMix64 with
seed d: per step d draws -> x_i = (r % 2001) / 1000 - 1, x normalised; then the reward r % 1000 / 1000),
and the same number of steps. numpy keeps A^-1 dense (K x d x d) as the usual numpy LinUCB does;
a select computes V = A^-1 x for every arm with one batched matmul and reuses V[k] in the update,
A_k^-1 -= v v^T / (1 + x.v), done two ways (--rank1):
  ger    BLAS sger/dger in place (scipy.linalg.blas): one read and one write of A_k^-1, the fastest;
  outer  plain numpy, A_k^-1 -= np.outer(...): builds a d x d temporary first.

Prints a table, then one JSON object on the last line. Medians over the timed steps (after 3 warm-up
steps). numpy's BLAS may use several threads (OPENBLAS_NUM_THREADS / OMP_NUM_THREADS apply).

    python3 bench/bandit_numpy.py [--dims 384,1024,4096] [--steps 50] [--dtypes float32,float64] [--rank1 ger,outer]
"""
import argparse
import json
import statistics
import time

import numpy as np

MASK = (1 << 64) - 1


class SplitMix64:
    def __init__(self, seed):
        self.state = seed & MASK

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)


def contexts(d, n):
    rng = SplitMix64(d)
    for _ in range(n):
        x = np.array([(rng.next() % 2001) / 1000 - 1 for _ in range(d)], dtype=np.float64)
        norm = np.sqrt(np.dot(x, x))
        if norm > 0:
            x = x / norm
        yield x, (rng.next() % 1000) / 1000


def resident_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def run(d, steps, dtype, rank1, arms=4, alpha=0.1, lam=1.0, warmup=3):
    if rank1 == "ger":
        from scipy.linalg import blas
        ger = blas.sger if dtype == np.float32 else blas.dger
    before = resident_bytes()
    a_inv = np.zeros((arms, d, d), dtype=dtype)
    for k in range(arms):
        np.fill_diagonal(a_inv[k], 1 / lam)
    b = np.zeros((arms, d), dtype=dtype)
    selects, updates, choices = [], [], []
    for n, (x64, reward) in enumerate(contexts(d, warmup + steps)):
        x = x64.astype(dtype)
        t0 = time.perf_counter()
        v = a_inv @ x  # (K, d): A_k^-1 x for every arm
        ucb = np.einsum("kd,kd->k", b, v) + alpha * np.sqrt(np.maximum(v @ x, 0))
        k = int(np.argmax(ucb))  # ties go to the lowest index, as in LaserCore
        t1 = time.perf_counter()
        vk = v[k]
        if rank1 == "ger":
            # A^-1 is symmetric: the Fortran-ordered view of row-major A_k^-1 is the same matrix.
            ger(-1 / (1 + x @ vk), vk, vk, a=a_inv[k].T, overwrite_a=True)
        else:
            a_inv[k] -= np.outer(vk, vk / (1 + x @ vk))
        b[k] += reward * x
        t2 = time.perf_counter()
        choices.append(k)
        if n >= warmup:
            selects.append((t1 - t0) * 1000)
            updates.append((t2 - t1) * 1000)
    resident = resident_bytes() - before
    steps_ms = [s + u for s, u in zip(selects, updates)]
    return {
        "d": d, "dtype": np.dtype(dtype).name, "rank1": rank1, "steps": steps,
        "ms_per_step": statistics.median(steps_ms), "select_ms": statistics.median(selects),
        "update_ms": statistics.median(updates), "state_bytes": a_inv.nbytes + b.nbytes,
        "resident_growth_bytes": resident, "choices": choices,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dims", default="384,1024,4096")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--dtypes", default="float32,float64")
    p.add_argument("--rank1", default="ger,outer", help="ger (BLAS via scipy), outer (plain numpy), or both")
    args = p.parse_args()
    dims = [int(s) for s in args.dims.split(",") if s]
    results = []
    print(f"numpy {np.__version__} LinUCB, Sherman-Morrison, K = 4, medians of {args.steps} steps")
    print("d     dtype    rank-1  ms/step  select ms  update ms  state MB  K*d^2*4 MB")
    for d in dims:
        for name in args.dtypes.split(","):
            for rank1 in args.rank1.split(","):
                r = run(d, args.steps, np.dtype(name), rank1)
                results.append(r)
                print(f"{d:<5d} {r['dtype']:<8s} {rank1:<7s} {r['ms_per_step']:<8.3f} {r['select_ms']:<10.3f} "
                      f"{r['update_ms']:<10.3f} {r['state_bytes'] / 1e6:<9.1f} {4 * d * d * 4 / 1e6:.1f}")
    print(json.dumps({"benchmark": "bandit_numpy", "numpy": np.__version__, "arms": 4, "steps": args.steps,
                      "results": results}, sort_keys=True))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Writes test/fixtures/lapack-sign.json: the sign numpy.linalg.svd gives the first right singular vector
of generated matrices, one or more per path dgesdd takes (QR first, LQ first, direct upper and lower
bidiagonal; leaves and divide-and-conquer trees of 1 to 3 levels).

Run with a pip numpy (its LAPACK is OpenBLAS's reference LAPACK, like the numpy pytorch-grad-cam users have):
python3 scripts/make_lapack_sign_fixture.py. The matrices come from a 32-bit LCG that test/lapack-sign.test.ts
repeats exactly, so only the expectations are stored.
"""
import json
import os

import numpy as np

OUT = os.path.join(os.path.dirname(__file__), '..', 'test', 'fixtures', 'lapack-sign.json')


def generate(m, n, seed, kind):
    """Row-major float32 values: ReLU'd columns with random offsets, or rank 3 plus noise."""
    state = seed

    def uniform():
        nonlocal state
        state = (state * 1664525 + 1013904223) % 2**32
        return (state >> 8) / 2**24 - 0.5

    a = np.zeros((m, n), dtype=np.float32)
    if kind == 'relu':
        shift = [uniform() * 0.5 for _ in range(n)]
        for i in range(m):
            for j in range(n):
                a[i, j] = max(0.0, uniform() + shift[j])
    else:
        p = [[uniform() for _ in range(3)] for _ in range(m)]
        q = [[uniform() for _ in range(n)] for _ in range(3)]
        for i in range(m):
            for j in range(n):
                a[i, j] = p[i][0] * q[0][j] + p[i][1] * q[1][j] + p[i][2] * q[2][j] + 0.001 * uniform()
    return a


cases = []
shapes = [(1, 9), (9, 1), (3, 3), (12, 20), (30, 8), (26, 26), (60, 40), (200, 40), (49, 128), (100, 120), (52, 52), (150, 130), (300, 64)]
for m, n in shapes:
    for kind in ['relu', 'lowrank']:
        for seed in [1, 2]:
            a = generate(m, n, seed * 7919 + m * 31 + n, kind)
            v = np.linalg.svd(a)[2][0]
            index = int(np.argmax(np.abs(v)))
            cases.append({'m': m, 'n': n, 'kind': kind, 'seed': seed * 7919 + m * 31 + n, 'index': index, 'sign': 1 if v[index] > 0 else -1})
with open(OUT, 'w') as f:
    json.dump({'numpy': np.__version__, 'cases': cases}, f, indent=0)
print(len(cases), 'cases')

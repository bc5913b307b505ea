#!/usr/bin/env python3
"""ROAD's imputations as pytorch-grad-cam runs them (its NoisyLinearImputer: the sparse system set up with numpy and
scipy's lil_matrix, solved by scipy's spsolve), timed on an image and a map saved by bench/road.ts:
    python3 bench/road_reference.py image.npy map.npy
Prints one JSON line: seconds per imputation and in all (MoRF and LeRF at percentiles 10..90), and the imputed
images' largest difference from ours where bench/road.ts saved them (ours.<order>.<p>.npy beside the image)."""
import json
import os
import sys
import time

import numpy as np
from scipy.sparse import csc_matrix, lil_matrix
from scipy.sparse.linalg import spsolve

WEIGHTS = [((1, 1), 1 / 12), ((0, 1), 1 / 6), ((-1, 1), 1 / 12), ((1, -1), 1 / 12), ((0, -1), 1 / 6), ((-1, -1), 1 / 12),
           ((1, 0), 1 / 6), ((-1, 0), 1 / 6)]


def impute(img, keep):
    """The same steps as pytorch-grad-cam's NoisyLinearImputer (noise 0): the system, vectorised, then spsolve."""
    channels, height, width = img.shape
    keep = keep.ravel()
    flat = img.reshape(channels, -1)
    holes = np.argwhere(keep == 0).ravel()
    slot = np.zeros(len(keep), dtype=int)
    slot[holes] = np.arange(len(holes))
    a = lil_matrix((len(holes), len(holes)))
    b = np.zeros((len(holes), channels))
    weight_sum = np.ones(len(holes))
    for (dy, dx), w in WEIGHTS:
        row, col = holes // width + dy, holes % width + dx
        valid = ~((row < 0) | (col < 0) | (row >= height) | (col >= width))
        neighbour = holes + dy * width + dx
        at, ids = neighbour[valid], np.argwhere(valid).ravel()
        known = keep[at] > 0.5
        b[ids[known], :] -= w * flat[:, at[known]].T
        a[ids[~known], slot[at[~known]]] = w
        weight_sum[np.argwhere(~valid).ravel()] -= w
    a[np.arange(len(holes)), np.arange(len(holes))] = -weight_sum
    out = flat.copy()
    out[:, holes] = spsolve(csc_matrix(a), b).T
    return out.reshape(img.shape)


image = np.load(sys.argv[1])[0].astype('float64')
saliency = np.load(sys.argv[2]).astype('float64')
folder = os.path.dirname(sys.argv[1])
times, difference = [], 0.0
for order, values in [('morf', saliency), ('lerf', 1 - saliency)]:
    for p in range(10, 100, 10):
        started = time.time()
        imputed = impute(image, (values < np.percentile(values, p)).astype('float32'))
        times.append(time.time() - started)
        ours = os.path.join(folder, f'ours.{order}.{p}.npy')
        if os.path.exists(ours):
            difference = max(difference, float(np.abs(np.load(ours)[0] - imputed).max()))
print(json.dumps({'seconds': sum(times), 'perImputation': [round(t, 3) for t in times], 'largestDifference': difference}))

#!/usr/bin/env python3
"""Reference values for the similarity metrics (test/metrics.test.ts), from scipy and scikit-image.

Run with Debian's python3-scipy and python3-skimage: /usr/bin/python3 scripts/metric_references.py
"""
import json
import os

import numpy as np
from scipy.stats import spearmanr
from skimage.feature import hog
from skimage.metrics import structural_similarity

OUT = os.path.join(os.path.dirname(__file__), '..', 'test', 'fixtures', 'metrics')
os.makedirs(OUT, exist_ok=True)
rng = np.random.RandomState(3)
a = rng.rand(20, 24).astype('float32')
b = np.clip(a + 0.3 * rng.rand(20, 24) - 0.15, 0, 1).astype('float32')
np.save(os.path.join(OUT, 'ssim_a.npy'), a)
np.save(os.path.join(OUT, 'ssim_b.npy'), b)
values = {
    'ssim': structural_similarity(a.astype('float64'), b.astype('float64'), gaussian_weights=True, sigma=1.5,
                                  use_sample_covariance=False, data_range=1),
    'spearman_ab': spearmanr(a.ravel(), b.ravel()).correlation,
    'spearman_ties': spearmanr([1, 2, 2, 3], [1, 2, 3, 4]).correlation,
}
# HOG features of two 64 x 80 maps (16 px cells, 3 x 3 blocks, L2-Hys), and the Spearman correlation of them.
c = rng.rand(64, 80).astype('float32')
d = np.clip(c + 0.5 * rng.rand(64, 80) - 0.25, 0, 1).astype('float32')
np.save(os.path.join(OUT, 'hog_c.npy'), c)
np.save(os.path.join(OUT, 'hog_d.npy'), d)
hc, hd = hog(c, pixels_per_cell=(16, 16)), hog(d, pixels_per_cell=(16, 16))
values['hog_c_first'] = [float(v) for v in hc[:12]]
values['hog_length'] = int(hc.size)
values['hog_c_sum'] = float(hc.sum())
values['spearman_hog'] = spearmanr(hc, hd).correlation
# ROAD's noisy linear imputation without noise: each removed pixel is the weighted mean of its in-image neighbours
# (1/6 direct, 1/12 diagonal), one sparse system per channel solved by spsolve; the removed pixels are those whose
# map value is at least the map's 70th percentile (numpy's linear percentile), as ROAD's MoRF at 70.
from scipy.sparse import lil_matrix
from scipy.sparse.linalg import spsolve
image = rng.randn(3, 12, 14).astype('float32')
road_map = rng.rand(12, 14).astype('float32')
keep = (road_map < np.percentile(road_map, 70)).ravel()
removed = np.flatnonzero(~keep)
slot = {p: i for i, p in enumerate(removed)}
weights = [((1, 1), 1 / 12), ((0, 1), 1 / 6), ((-1, 1), 1 / 12), ((1, -1), 1 / 12), ((0, -1), 1 / 6), ((-1, -1), 1 / 12),
           ((1, 0), 1 / 6), ((-1, 0), 1 / 6)]
system = lil_matrix((len(removed), len(removed)))
rhs = np.zeros((len(removed), 3))
for i, p in enumerate(removed):
    y, x = divmod(p, 14)
    for (dy, dx), w in weights:
        ny, nx = y + dy, x + dx
        if not (0 <= ny < 12 and 0 <= nx < 14):
            continue
        system[i, i] += w
        q = ny * 14 + nx
        if keep[q]:
            rhs[i] += w * image[:, ny, nx]
        else:
            system[i, slot[q]] -= w
solution = spsolve(system.tocsc(), rhs)
imputed = image.reshape(3, -1).copy()
imputed[:, removed] = solution.T
np.save(os.path.join(OUT, 'road_image.npy'), image[None])
np.save(os.path.join(OUT, 'road_map.npy'), road_map)
np.save(os.path.join(OUT, 'road_imputed.npy'), imputed.reshape(1, 3, 12, 14).astype('float32'))
values['road_threshold'] = float(np.percentile(road_map, 70))

# ROAD in full, as pytorch-grad-cam defines it (noise 0, so the values are exact): at each percentile p, MoRF keeps
# the pixels whose map value is below the map's p-th percentile and imputes the rest; LeRF does the same with
# 1 - map. The score is a linear "model"'s logit 0, the mean of channel 0; each percentile's change is
# score(imputed) - score(image); combined = (mean LeRF - mean MoRF) / 2.
def impute(img, keep_mask):
    h, w = keep_mask.shape
    keep_flat = keep_mask.ravel()
    holes = np.flatnonzero(~keep_flat)
    index = {q: i for i, q in enumerate(holes)}
    a = lil_matrix((len(holes), len(holes)))
    b = np.zeros((len(holes), img.shape[0]))
    for i, q in enumerate(holes):
        y, x = divmod(q, w)
        for (dy, dx), wt in weights:
            ny, nx = y + dy, x + dx
            if not (0 <= ny < h and 0 <= nx < w):
                continue
            a[i, i] += wt
            r = ny * w + nx
            if keep_flat[r]:
                b[i] += wt * img[:, ny, nx]
            else:
                a[i, index[r]] -= wt
    filled = img.reshape(img.shape[0], -1).astype('float64').copy()
    if len(holes):
        filled[:, holes] = spsolve(a.tocsc(), b).reshape(len(holes), -1).T
    return filled.reshape(img.shape)


score = lambda img: float(img[0].mean())
road_changes = {}
for order, values_map in [('morf', road_map), ('lerf', 1 - road_map)]:
    road_changes[order] = [score(impute(image, values_map < np.percentile(values_map, p))) - score(image) for p in range(10, 100, 10)]
values['road_morf'] = road_changes['morf']
values['road_lerf'] = road_changes['lerf']
values['road_combined'] = (np.mean(road_changes['lerf']) - np.mean(road_changes['morf'])) / 2
with open(os.path.join(OUT, 'references.json'), 'w') as f:
    json.dump(values, f, indent=1)
print(values)

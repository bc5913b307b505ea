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
with open(os.path.join(OUT, 'references.json'), 'w') as f:
    json.dump(values, f, indent=1)
print(values)

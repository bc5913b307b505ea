#!/usr/bin/env python3
"""Times microsoft/vision-explanation-methods' DRISE_saliency on the composite detector (its PyTorch weights,
bench/models/composite_detector.pt, left by scripts/train_composite_detection.py), with the wrapper of
scripts/make_drise_fixture.py: prints one JSON line {masks, seconds, masks_per_second}.

    /usr/bin/python3 bench/drise_reference.py <vision-explanation-methods checkout> <masks> <image.jpg> <threads>
"""
import json
import os
import sys
import time

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'scripts'))
import make_drise_fixture as fixture  # noqa: E402  (reads the checkout from argv[1])

masks, image, threads = int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
torch.set_num_threads(threads)
net = fixture.training.Detector()
net.load_state_dict(torch.load(os.path.join(fixture.ROOT, 'bench', 'models', 'composite_detector.pt')))
model = fixture.Wrapper(net.eval())
x = torch.from_numpy(np.asarray(Image.open(image).convert('RGB')).copy()).permute(2, 0, 1).float().div(255)
top = model.predict(x[None])[0].get_by_index([0])
torch.manual_seed(0)
started = time.perf_counter()
fixture.drise.DRISE_saliency(model, x, [top], masks, mask_res=(16, 16))
seconds = time.perf_counter() - started
print(json.dumps({'masks': masks, 'seconds': seconds, 'masks_per_second': masks / seconds}))

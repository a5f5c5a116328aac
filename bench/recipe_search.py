"""The Adam recipe search behind the README's H100 numbers: trains each configuration with
the project's `fit` on the default data and prints one JSON line per configuration (test L1
and SI-SDR beside the least-squares filter with the same receptive field). 1500 epochs take
~35 s each on a GPU; `make recipe-adam` runs the main row through DVC instead.

    python bench/recipe_search.py
"""

import json
import time

from cnn_denoise import synth, baselines, quality, model as cnn
from cnn_denoise.dataset import to_pairs, split_pairs
from cnn_denoise.train import fit, pick_device
from cnn_denoise.metrics import losses, predict
dev = pick_device("auto")
pairs = to_pairs(synth.make_pairs(300, 32000, 0))
train, test = split_pairs(pairs, 50, 0)
configs = [
  ("adam-linear-s1000-e300", dict(taps=[40,40], features=[1,5,1], last="linear", scale=1000.0, opt="adam", lr=1e-3, epochs=300)),
  ("adam-linear-s1000-e1500", dict(taps=[40,40], features=[1,5,1], last="linear", scale=1000.0, opt="adam", lr=1e-3, epochs=1500)),
  ("adam-tanh-s1000-e1500", dict(taps=[40,40], features=[1,5,1], last="tanh", scale=1000.0, opt="adam", lr=1e-3, epochs=1500)),
  ("deep-adam-linear-e1500", dict(taps=[40,40,40], features=[1,16,16,1], last="linear", scale=1000.0, opt="adam", lr=1e-3, epochs=1500)),
  ("adam-linear-s1000-lr3e-3-e1500", dict(taps=[40,40], features=[1,5,1], last="linear", scale=1000.0, opt="adam", lr=3e-3, epochs=1500)),
]
lin_cache = {}
for name, c in configs:
    t0 = time.time()
    m = cnn.build(c["taps"], c["features"], c["last"], seed=0, input_scale=c["scale"])
    hist = fit(m, train, test, c["lr"], 32, c["epochs"], 0, dev, progress=False, optimizer=c["opt"])
    rf = m.receptive_field
    if rf not in lin_cache:
        h = baselines.fit_fir(train["x"], train["y"], rf)
        lo = baselines.apply_fir(h, test["x"])
        lin_cache[rf] = (losses(lambda v: v, lo, test["y"])["l1"], quality.si_sdr_db(lo, test["y"]))
    out = predict(m, test["x"])
    res = dict(name=name, secs=round(time.time()-t0,1), test_l1=losses(lambda v: v, out, test["y"])["l1"], si_sdr=quality.si_sdr_db(out, test["y"]),
               lin_l1=lin_cache[rf][0], lin_si_sdr=lin_cache[rf][1], hist_tail=[round(h["test_l1"]*1e7,3) for h in hist[-3:]])
    print(json.dumps(res), flush=True)

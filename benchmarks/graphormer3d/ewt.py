"EwT (OC definition, |ΔE| < 0.02 eV) and MAE of `molkit predict` output against the test split's labels."
import sys, numpy as np, torch
from molkit.train.inference import load_trained, _dataset
from molkit.metrics.oc import energy_terms
ckpt, npz, key = sys.argv[1], sys.argv[2], sys.argv[3]
model, norms, cfg = load_trained(ckpt)
ds = _dataset(None, 'test', cfg)
y = torch.tensor([float(ds[i][key]) for i in range(len(ds))], dtype=torch.float64)
pred = torch.from_numpy(np.load(npz)[key]).double().reshape(-1)
terms, _ = energy_terms(pred, y)
train = _dataset(None, 'train', cfg)
mean = float(np.mean([float(train[i][key]) for i in range(len(train))]))
print(f"n={len(y)} energy_mae={terms['energy_mae'][0].mean():.4f} eV EwT={terms['energy_within_threshold'][0].mean():.3f} "
      f"(train-mean baseline MAE {(y - mean).abs().mean():.4f} eV)")

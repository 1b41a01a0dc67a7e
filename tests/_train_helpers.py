"Shared helpers for the training-engine tests: a tiny synthetic molecule dataset and a tiny SchNet config."
import os, subprocess, sys
from pathlib import Path
import torch
from torch_geometric.data import Data

TINY_SCHNET = {'hidden_dim': 16, 'num_filters': 16, 'num_interactions': 2, 'num_gaussians': 16, 'cutoff': 4.0}

def toy_molecules(n: int = 64, seed: int = 0) -> list[Data]:
    "Random H/C/O molecules (2-7 atoms) with a smooth energy (pairwise 1/r plus element offsets) and forces."
    g, out = torch.Generator().manual_seed(seed), []
    ref = torch.zeros(119, dtype=torch.float64); ref[1], ref[6], ref[8] = -0.5, -38.0, -75.0
    for _ in range(n):
        k = int(torch.randint(2, 8, (1,), generator=g))
        z = torch.tensor([1, 6, 8])[torch.randint(0, 3, (k,), generator=g)]
        pos = (2.5 * torch.rand(k, 3, generator=g)).requires_grad_(True)
        d = torch.cdist(pos, pos) + torch.eye(k)
        e = (torch.triu(1.0 / d, diagonal=1)).sum()
        (f,) = torch.autograd.grad(-e, pos)
        out.append(Data(z=z, pos=pos.detach(), natoms=torch.tensor([k]), fixed=torch.zeros(k, dtype=torch.bool),
                        energy=(e.detach().double() + ref[z].sum()).reshape(1), forces=f.float()))
    return out

def toy_config(run_dir: Path, dataset: str, max_steps: int = 30, **train) -> dict:
    "Config dict for a tiny SchNet energy model on a toy LMDB."
    return {'data': {'dataset': dataset, 'split': {'train': 48, 'val': 16}, 'batch_size': 4, 'eval_batch_size': 16,
                     'linear_reference': ['energy']},
            'model': {'backbone': 'schnet', 'backbone_cfg': TINY_SCHNET, 'heads': {'energy': {'type': 'energy'}}},
            'loss': [{'target': 'energy', 'fn': 'l1'}],
            'optim': {'lr': 2e-3}, 'schedule': {'warmup_steps': 5}, 'ema': {'decay': 0.9},
            'train': {'max_steps': max_steps, 'eval_every': 10, 'checkpoint_every': 10, 'log_every': 1, 'progress': False,
                      'device': 'cpu', **train},
            'seed': 0, 'run_dir': str(run_dir)}


EXE = Path(sys.executable).parent / 'molkit'
ENV = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONPATH': str(Path(__file__).resolve().parents[1])}

def run_molkit(*args, cwd=None, timeout: int = 900) -> subprocess.CompletedProcess:
    "Run the installed `molkit` console script in a fresh process: one thread, this checkout first on PYTHONPATH."
    return subprocess.run([str(EXE), *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=ENV)

def molkit(*args, check: bool = True, cwd=None) -> subprocess.CompletedProcess:
    "`run_molkit`, asserting a zero exit status (with the end of stderr) unless `check` is False."
    p = run_molkit(*args, cwd=cwd)
    if check: assert p.returncode == 0, p.stderr[-3000:]
    return p

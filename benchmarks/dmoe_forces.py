"""DMoE energy + conservative forces against a scalar energy head on MD-style data of one molecule, at the same budget.

Data: Langevin MD of ethanol at 500 K with ASE's EMT calculator (offline; EMT has H, C, O parameters), every
`--stride`-th frame kept. Model: a small SchNet; heads (a) scalar energy + gradient forces, L1 energy + L2-norm
force loss; (b) distribution (DMoE) energy + gradient forces F = -dE[y]/dpos, DMoE energy loss + the same force loss.

    OMP_NUM_THREADS=1 python benchmarks/dmoe_forces.py --frames 600 --steps 600 --seeds 0 1 2
    OMP_NUM_THREADS=1 python benchmarks/dmoe_forces.py --frames 600 --write /tmp/md_ethanol   # data of the MD study configs
"""
import argparse, json, statistics, tempfile, time
from pathlib import Path
import numpy as np
import torch
from ase import units
from ase.build import molecule
from ase.calculators.emt import EMT
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
from molkit.data.atoms import atoms_to_data
from molkit.data.lmdb import write_lmdb
from molkit.train.loop import train

def md_frames(n: int, stride: int, seed: int = 0) -> list:
    "Ethanol frames from Langevin MD (0.5 fs, 500 K) with energies and forces from EMT."
    atoms = molecule('CH3CH2OH'); atoms.calc = EMT()
    MaxwellBoltzmannDistribution(atoms, temperature_K=500, rng=np.random.default_rng(seed))
    dyn = Langevin(atoms, 0.5 * units.fs, temperature_K=500, friction=0.02, rng=np.random.default_rng(seed))
    out = []
    for _ in range(n):
        dyn.run(stride)
        a = atoms.copy(); a.calc = None
        a.info['energy'] = atoms.get_potential_energy(); a.arrays['forces'] = atoms.get_forces()
        out.append(atoms_to_data(_labelled(a)))
    return out

def _labelled(a):
    from ase.calculators.singlepoint import SinglePointCalculator
    a.calc = SinglePointCalculator(a, energy=a.info.pop('energy'), forces=a.arrays.pop('forces'))
    return a

HEADS = {'scalar': ({'type': 'energy'}, 'l1'),
         'dmoe': ({'type': 'dist', 'bins': {'num_bins': 64}, 'head': {'hidden_dim': 64}}, 'dmoe')}

def config(data: str, kind: str, seed: int, steps: int, run_dir: Path, force_weight: float = 10.0) -> dict:
    head, fn = HEADS[kind]
    return {'data': {'dataset': data, 'split': {'train': 0.6, 'val': 0.2, 'test': 0.2}, 'batch_size': 16},
            'model': {'backbone': 'schnet', 'backbone_cfg': {'hidden_dim': 64, 'num_filters': 64, 'num_interactions': 3,
                                                             'num_gaussians': 32, 'cutoff': 5.0},
                      'heads': {'energy': head, 'forces': {'type': 'gradient_forces', 'energy': 'energy'}}},
            'loss': [{'target': 'energy', 'fn': fn}, {'target': 'forces', 'fn': 'l2mae', 'weight': force_weight}],
            'optim': {'lr': 1e-3}, 'schedule': {'warmup_steps': 30}, 'ema': {'decay': 0.99},
            'train': {'max_steps': steps, 'eval_every': 0, 'checkpoint_every': 0, 'progress': False, 'device': 'cpu'},
            'seed': seed, 'run_dir': str(run_dir)}

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--frames', type=int, default=600); ap.add_argument('--stride', type=int, default=10)
    ap.add_argument('--steps', type=int, default=600); ap.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    ap.add_argument('--force-weight', type=float, default=10.0, help='weight of the force loss (0: energy only)')
    ap.add_argument('--out', default='benchmarks/results/dmoe_forces.json')
    ap.add_argument('--write', default=None, metavar='DIR', help='only write the MD frames as a molkit LMDB to DIR (for molkit ablate)')
    a = ap.parse_args()
    torch.set_num_threads(1)
    if a.write:
        print(write_lmdb(md_frames(a.frames, a.stride), a.write, progress=False)); return
    tmp = Path(tempfile.mkdtemp())
    t0 = time.time(); data = str(write_lmdb(md_frames(a.frames, a.stride), tmp / 'ethanol', progress=False))
    print(f"{a.frames} MD frames in {time.time() - t0:.0f} s")
    from molkit.train.inference import evaluate
    rows = []
    for seed in a.seeds:
        for kind in HEADS:
            t0 = time.time()
            res = train(config(data, kind, seed, a.steps, tmp / f'{kind}_{seed}', a.force_weight))
            m = evaluate(res.checkpoint, split='test', progress=False)
            rows.append({'kind': kind, 'seed': seed, 'energy_mae_meV': 1000 * m['energy_mae'],
                         'forces_mae_meV_A': 1000 * m['forces_mae'], 'time_s': time.time() - t0})
            print(rows[-1], flush=True)
    summary = {}
    for kind in HEADS:
        for k in ('energy_mae_meV', 'forces_mae_meV_A'):
            xs = [r[k] for r in rows if r['kind'] == kind]
            summary[f'{kind}/{k}'] = (statistics.mean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0)
    print(json.dumps(summary, indent=1))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps({'args': vars(a), 'torch': torch.__version__, 'rows': rows, 'summary': summary}, indent=1))

if __name__ == '__main__':
    main()

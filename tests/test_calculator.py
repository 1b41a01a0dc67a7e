"MolkitCalculator and IS2RE by relaxation end to end: checkpoints, ASE caching and dynamics, a model trained on EMT frames."
import math
from pathlib import Path
import numpy as np
import pytest, torch
from ase.build import molecule
from ase.calculators.emt import EMT
from ase.md.verlet import VelocityVerlet
from molkit.data.atoms import atoms_to_data, data_to_atoms
from molkit.data.emt import EMTConfig, write_emt_dataset
from molkit.data.lmdb import LMDBDataset
from molkit.train.calculator import MolkitCalculator, finite_difference_forces
from molkit.train.checkpoint import save_checkpoint
from molkit.train.config import to_dict
from molkit.train.inference import predict
from molkit.train.loop import train
from molkit.train.relax import is2re_by_relaxation
from molkit.train.model import ModelConfig, build_model
from molkit.train.norms import TargetNorm
from molkit.train.setup import ExperimentConfig
from _train_helpers import TINY_SCHNET

EF_HEADS = {'energy': {'type': 'energy'}, 'forces': {'type': 'gradient_forces', 'energy': 'energy'}}

@pytest.fixture(scope='module')
def emt_data(tmp_path_factory) -> dict:
    "A tiny EMT dataset: S2EF frames and IS2RE records as molkit LMDBs."
    cfg = EMTConfig(n_systems=4, size=(2, 2, 3), n_fixed_layers=1, metals=('Cu', 'Pt'), adsorbates=('O', 'H'),
                    fmax=0.05, max_steps=60, seed=2)
    return write_emt_dataset(cfg, tmp_path_factory.mktemp('emt'), progress=False)

def _untrained_checkpoint(path: Path, heads: dict) -> Path:
    "Checkpoint of a randomly initialised tiny SchNet with linear-reference normalisers."
    cfg = ExperimentConfig(model=ModelConfig(backbone_cfg=TINY_SCHNET, heads=heads), loss=[])
    torch.manual_seed(0); model = build_model(cfg.model)
    refs = torch.zeros(119, dtype=torch.float64); refs[[1, 8, 29, 78]] = torch.tensor([-1.1, -4.0, -0.3, -0.6], dtype=torch.float64)
    norms = {'energy': TargetNorm(0.2, 1.7, refs), 'forces': TargetNorm(0.0, 1.7)}
    sd = {'model': model.state_dict(), 'ema': None, 'config': to_dict(cfg),
          'normalizers': {k: v.state_dict() for k, v in norms.items() if k in heads}}
    return save_checkpoint(sd, path)

@pytest.mark.parametrize('heads', [EF_HEADS, {'energy': {'type': 'energy'}}], ids=['force_head', 'autograd'])
def test_checkpoint_calculator_matches_predict(emt_data, tmp_path, heads):
    ck = _untrained_checkpoint(tmp_path / 'ck.pt', heads)
    rec = LMDBDataset(str(emt_data['is2re']))[1]
    atoms = data_to_atoms(rec); atoms.calc = MolkitCalculator.from_checkpoint(ck)
    e, f = atoms.get_potential_energy(), atoms.get_forces(apply_constraint=False)
    p = predict(ck, [atoms_to_data(atoms)], progress=False)
    assert math.isclose(e, float(p['energy'][0]), rel_tol=0, abs_tol=1e-5)
    if 'forces' in heads: np.testing.assert_allclose(f, p['forces'].numpy(), atol=1e-5)
    c64 = MolkitCalculator.from_checkpoint(ck, dtype=torch.float64)
    a = atoms.copy(); a.calc = c64
    np.testing.assert_allclose(a.get_forces(apply_constraint=False), finite_difference_forces(a, 1e-4), atol=1e-6)
    np.testing.assert_allclose(a.get_forces(apply_constraint=False), f, atol=1e-4)  # fp32 agrees with fp64

def test_ase_caches_results(tmp_path):
    calc = MolkitCalculator.from_checkpoint(_untrained_checkpoint(tmp_path / 'ck.pt', EF_HEADS))
    calls = []
    calc.model.backbone.register_forward_hook(lambda *a: calls.append(1))
    atoms = molecule('H2O'); atoms.calc = calc
    atoms.get_potential_energy(); atoms.get_forces(); atoms.get_potential_energy()
    assert len(calls) == 1
    atoms.positions[0, 0] += 0.01
    atoms.get_forces()
    assert len(calls) == 2
    VelocityVerlet(atoms, timestep=0.5).run(3)  # ASE dynamics run on it
    assert len(calls) == 5 and np.isfinite(atoms.get_potential_energy())

def test_trained_checkpoint_is2re(emt_data, tmp_path):
    cfg = {'data': {'dataset': str(emt_data['s2ef']), 'split': {'train': 0.8, 'val': None, 'test': 0}, 'batch_size': 8,
                    'linear_reference': ['energy'], 'balance': False},
           'model': {'backbone': 'schnet', 'backbone_cfg': TINY_SCHNET, 'heads': EF_HEADS},
           'loss': [{'target': 'energy', 'fn': 'l1'}, {'target': 'forces', 'fn': 'l2mae', 'weight': 10.0}],
           'optim': {'lr': 3e-3}, 'ema': {'decay': 0.9},
           'train': {'max_steps': 15, 'eval_every': 0, 'checkpoint_every': 0, 'progress': False, 'device': 'cpu'},
           'run_dir': str(tmp_path / 'run')}
    ck = train(cfg).checkpoint
    records = LMDBDataset(str(emt_data['is2re']))
    res = is2re_by_relaxation(ck, [records[i] for i in range(len(records))], steps=8, device='cpu', per_system=True,
                              progress=False)
    assert res['n_systems'] == len(records) and len(res['systems']) == len(records)
    for k in ('energy_mae', 'energy_within_threshold', 'average_distance_within_threshold', 'positions_mae'):
        assert math.isfinite(res[k]), (k, res)
    assert 0 <= res['average_distance_within_threshold'] <= 1 and all(1 <= s['steps'] <= 8 for s in res['systems'])
    perfect = is2re_by_relaxation(EMT, [records[i] for i in range(len(records))], progress=False)
    assert perfect['energy_mae'] < 0.02 and perfect['average_distance_within_threshold'] > 0.9, perfect

@pytest.mark.cuda
def test_cuda_matches_cpu(tmp_path):
    ck = _untrained_checkpoint(tmp_path / 'ck.pt', EF_HEADS)
    out = []
    for dev in ('cpu', 'cuda'):
        atoms = molecule('CH3OH'); atoms.calc = MolkitCalculator.from_checkpoint(ck, device=dev)
        out.append((atoms.get_potential_energy(), atoms.get_forces()))
    assert math.isclose(out[0][0], out[1][0], abs_tol=1e-4)
    np.testing.assert_allclose(out[0][1], out[1][1], atol=1e-4)


def test_cli_eval_is2re(emt_data, tmp_path):
    "`molkit eval CHECKPOINT DATASET --is2re` relaxes every record with the model and prints EwT and ADwT."
    import json, os, subprocess, sys
    ck = _untrained_checkpoint(tmp_path / 'untrained.pt', EF_HEADS)
    exe = Path(sys.executable).parent / 'molkit'
    p = subprocess.run([str(exe), 'eval', str(ck), str(emt_data['is2re']), '--is2re', '--steps', '5', '--device', 'cpu',
                        '--out', str(tmp_path / 'is2re.json')], capture_output=True, text=True, timeout=300,
                       env={**os.environ, 'OMP_NUM_THREADS': '1'})
    assert p.returncode == 0, p.stderr[-2000:]
    m = json.loads((tmp_path / 'is2re.json').read_text())
    assert m['n_systems'] == 4 and 0 <= m['average_distance_within_threshold'] <= 1 and m['mean_steps'] <= 5
    assert 'energy_within_threshold' in p.stdout


def test_calculator_with_a_dmoe_energy_head(emt_data, tmp_path):
    "A model whose energy head predicts a histogram: energy = its expected value, forces = -dE/dpos of it."
    dist = {'type': 'dist', 'bins': {'num_bins': 16}, 'target': {'kind': 'hl_gauss', 'sigma': 0.75},
            'head': {'hidden_dim': 16}}
    cfg = {'data': {'dataset': str(emt_data['s2ef']), 'split': {'train': 0.8, 'val': None, 'test': 0}, 'batch_size': 8,
                    'linear_reference': ['energy'], 'balance': False},
           'model': {'backbone': 'schnet', 'backbone_cfg': TINY_SCHNET, 'heads': {'energy': dist}},
           'loss': [{'target': 'energy', 'fn': 'dmoe'}], 'optim': {'lr': 3e-3},
           'train': {'max_steps': 5, 'eval_every': 0, 'checkpoint_every': 0, 'progress': False, 'device': 'cpu'},
           'run_dir': str(tmp_path / 'run')}
    ck = train(cfg).checkpoint
    rec = LMDBDataset(str(emt_data['is2re']))[0]
    atoms = data_to_atoms(rec); atoms.calc = MolkitCalculator.from_checkpoint(ck, dtype=torch.float64)
    e = atoms.get_potential_energy()
    assert math.isclose(e, float(predict(ck, [atoms_to_data(atoms)], progress=False)['energy'][0]), abs_tol=1e-4)
    np.testing.assert_allclose(atoms.get_forces(apply_constraint=False), finite_difference_forces(atoms, 1e-4), atol=1e-5)

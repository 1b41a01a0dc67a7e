"""GemNet-OC from the command line on EMT S2EF data: energy + gradient forces, a DMoE distribution head, direct forces,
the refusal to train without fitted scale factors, and the S / L parameter counts."""
import dataclasses, json, os, subprocess, sys
from pathlib import Path
import numpy as np
import pytest
import yaml
from molkit.data.emt import EMTConfig, write_emt_dataset
from molkit.models.gemnet_oc.model import GEMNET_OC_PRESETS, count_parameters
from _train_helpers import run_molkit

TINY = {'cutoff': 4.0, 'absolute_rbf_cutoff': 4.0, 'max_num_neighbors': 12}  # tiny preset, lighter graphs for speed


def molkit(*args, ok: bool = True) -> subprocess.CompletedProcess:
    "Run the molkit console script; check its exit status."
    p = run_molkit(*args)
    assert (p.returncode == 0) == ok, p.stderr[-3000:]
    return p


@pytest.fixture(scope='module')
def emt(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp('emt')
    return write_emt_dataset(EMTConfig(n_systems=4, size=(2, 2, 3), seed=3), out, progress=False)['s2ef']


def _config(tmp_path: Path, emt: Path, heads: dict, loss: list, **backbone) -> Path:
    cfg = {'data': {'dataset': str(emt), 'limit': 40, 'split': {'train': 24, 'val': 8, 'test': 8}, 'batch_size': 4,
                    'eval_batch_size': 8, 'linear_reference': ['energy']},
           'model': {'backbone': 'gemnet_oc', 'preset': 'tiny', 'backbone_cfg': {**TINY, **backbone}, 'heads': heads},
           'loss': loss, 'optim': {'lr': 1e-3}, 'schedule': {'warmup_steps': 2},
           'train': {'max_steps': 4, 'eval_every': 2, 'checkpoint_every': 2, 'progress': False, 'device': 'cpu'},
           'seed': 0, 'run_dir': str(tmp_path / 'run')}
    path = tmp_path / 'config.yaml'
    path.write_text(yaml.safe_dump(cfg))
    return path


def _eval(tmp_path: Path) -> dict:
    ckpt = sorted((tmp_path / 'run' / 'checkpoints').glob('step_*.pt'))[-1]
    molkit('eval', ckpt, '--split', 'test', '--out', tmp_path / 'm.json')
    return json.loads((tmp_path / 'm.json').read_text())


EF = {'energy': {'type': 'energy'}, 'forces': {'type': 'gradient_forces', 'energy': 'energy'}}
EF_LOSS = [{'target': 'energy', 'fn': 'l1'}, {'target': 'forces', 'fn': 'l1', 'weight': 10}]


def test_energy_and_gradient_forces(tmp_path, emt):
    out = molkit('train', _config(tmp_path, emt, EF, EF_LOSS), '--set', 'model.backbone_cfg.fit_scales=true').stdout
    assert '4 steps' in out
    m = _eval(tmp_path)
    assert np.isfinite(m['energy_mae']) and np.isfinite(m['forces_mae'])


def test_distribution_energy_head(tmp_path, emt):
    heads = {'energy': {'type': 'dist', 'bins': {'num_bins': 16}, 'target': {'kind': 'hl_gauss', 'sigma': 0.75}}}
    molkit('train', _config(tmp_path, emt, heads, [{'target': 'energy', 'fn': 'dmoe'}], fit_scales=True))
    assert np.isfinite(_eval(tmp_path)['energy_mae'])


def test_direct_forces(tmp_path, emt):
    heads = {'energy': {'type': 'energy'}, 'forces': {'type': 'gemnet_direct_forces', 'edge_dim': 32}}
    molkit('train', _config(tmp_path, emt, heads, EF_LOSS, fit_scales=True))
    assert np.isfinite(_eval(tmp_path)['forces_mae'])


def test_refuses_to_train_without_scale_factors(tmp_path, emt):
    p = molkit('train', _config(tmp_path, emt, EF, EF_LOSS), ok=False)
    assert 'unfitted scale factors' in p.stderr and 'fit_scales' in p.stderr and 'fit_scale_factors' in p.stderr


def test_parameter_counts():
    S, L = GEMNET_OC_PRESETS['jmp_s'], GEMNET_OC_PRESETS['jmp_l']
    assert count_parameters(S) == 38_873_088  # 38.9 M with the direct-force branch
    assert count_parameters(dataclasses.replace(S, direct_forces=False)) == 28_608_512  # 28.6 M
    assert count_parameters(L) == 216_416_256  # 216.4 M
    assert count_parameters(dataclasses.replace(L, direct_forces=False)) == 160_612_352  # 160.6 M

"Graphormer-3D from the command line: `molkit train` a few steps on EMT IS2RE records (regression and DMoE heads), then `molkit eval`."
import json, os, subprocess, sys
from pathlib import Path
import numpy as np
import pytest, yaml
from molkit.data.emt import EMTConfig, write_emt_dataset
from _train_helpers import molkit as _molkit


@pytest.fixture(scope='module')
def emt(tmp_path_factory):
    return write_emt_dataset(EMTConfig(n_systems=16, seed=5), tmp_path_factory.mktemp('emt'), progress=False)


@pytest.fixture(scope='module')
def is2re(emt): return emt['is2re']


def molkit(*args):
    "Run the console script with one thread; return stdout, fail with its stderr."
    return _molkit(*args).stdout


def config(dataset, run_dir, head, loss):
    return {'data': {'dataset': str(dataset), 'split': {'train': 10, 'val': 3, 'test': 3}, 'batch_size': 4, 'eval_batch_size': 8},
            'model': {'backbone': 'graphormer3d', 'preset': 'tiny', 'heads': {'ads_energy_relaxed': head}},
            'loss': [{'target': 'ads_energy_relaxed', **loss}], 'optim': {'lr': 1e-3}, 'schedule': {'warmup_steps': 2},
            'train': {'max_steps': 6, 'eval_every': 3, 'checkpoint_every': 3, 'progress': False, 'device': 'cpu'},
            'seed': 0, 'run_dir': str(run_dir)}


@pytest.mark.parametrize('head,loss', [({'type': 'g3d_energy'}, {'fn': 'l1'}),
                                       ({'type': 'energy'}, {'fn': 'l1'}),
                                       ({'type': 'dist', 'bins': {'num_bins': 16}, 'head': {'hidden_dim': 16}}, {'fn': 'dmoe'})],
                         ids=['tag_energy', 'sum_energy', 'dmoe'])
def test_train_and_eval_from_the_command_line(tmp_path, is2re, head, loss):
    cfg = tmp_path / 'g3d.yaml'
    cfg.write_text(yaml.safe_dump(config(is2re, tmp_path / 'run', head, loss)))
    assert '6 steps' in molkit('train', cfg)
    steps = [json.loads(l) for l in (tmp_path / 'run' / 'steps.jsonl').read_text().splitlines()]
    assert steps and all(np.isfinite(s['loss']) for s in steps)
    ckpt = sorted((tmp_path / 'run' / 'checkpoints').glob('step_*.pt'))[-1]
    molkit('eval', ckpt, '--split', 'test', '--out', tmp_path / 'm.json')
    metrics = json.loads((tmp_path / 'm.json').read_text())
    assert np.isfinite(metrics['ads_energy_relaxed_mae'])
    if head['type'] == 'dist': assert np.isfinite(metrics['ads_energy_relaxed_nll'])


def test_node_head_direct_forces_from_the_command_line(tmp_path, emt):
    "S2EF frames: tag-weighted energy plus direct forces from the Graphormer node head; force metrics reported."
    c = config(emt['s2ef'], tmp_path / 'run', {'type': 'g3d_energy'}, {'fn': 'l1'})
    c['data'].update(split={'train': 40, 'val': 8, 'test': 8}, linear_reference=['energy'])
    c['model']['heads'] = {'energy': {'type': 'g3d_energy'}, 'forces': {'type': 'g3d_node'}}
    c['loss'] = [{'target': 'energy', 'fn': 'l1'}, {'target': 'forces', 'fn': 'l2mae', 'weight': 10.0, 'free_atoms_only': True}]
    cfg = tmp_path / 'g3d.yaml'
    cfg.write_text(yaml.safe_dump(c))
    assert '6 steps' in molkit('train', cfg)
    ckpt = sorted((tmp_path / 'run' / 'checkpoints').glob('step_*.pt'))[-1]
    molkit('eval', ckpt, '--split', 'test', '--out', tmp_path / 'm.json')
    metrics = json.loads((tmp_path / 'm.json').read_text())
    assert np.isfinite(metrics['energy_mae']) and np.isfinite(metrics['forces_mae'])


def test_is2re_with_auxiliary_deltapos_loss(tmp_path, is2re):
    "IS2RE with Graphormer-3D's auxiliary Δpos loss (pos_relaxed − pos, surface and adsorbate atoms, weight 15 → 1); eval reports EwT."
    c = config(is2re, tmp_path / 'run', {'type': 'g3d_energy'}, {'fn': 'l1'})
    c['model']['heads']['delta_pos'] = {'type': 'g3d_node', 'min_tag': 1}
    c['loss'].append({'target': 'delta_pos', 'fn': 'l2mae', 'weight': 15.0, 'weight_end': 1.0, 'weight_steps': 6,
                      'min_tag': 1, 'reduction': 'structurewise'})
    (tmp_path / 'c.yaml').write_text(yaml.safe_dump(c))
    molkit('train', tmp_path / 'c.yaml')
    steps = [json.loads(l) for l in (tmp_path / 'run' / 'steps.jsonl').read_text().splitlines()]
    assert all(np.isfinite(s['delta_pos']) for s in steps)
    out = molkit('eval', tmp_path / 'run', '--split', 'test', '--out', tmp_path / 'm.json')
    m = json.loads((tmp_path / 'm.json').read_text())
    assert 0 <= m['ads_energy_relaxed_within_threshold'] <= 1 and np.isfinite(m['delta_pos_mae']), out

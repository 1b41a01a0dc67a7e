"`molkit train`, `molkit eval` and `molkit predict` from the command line on the embedded QM9 subset."
import json, os, subprocess, sys
from pathlib import Path
import numpy as np
import yaml
from _train_helpers import molkit as _molkit

CONFIG = {
    'data': {'dataset': 'qm9_subset', 'limit': 400, 'split': {'train': 300, 'val': 50, 'test': 50},
             'batch_size': 16, 'eval_batch_size': 64, 'linear_reference': ['U0']},
    'model': {'backbone': 'schnet', 'backbone_cfg': {'hidden_dim': 16, 'num_filters': 16, 'num_interactions': 2,
                                                     'num_gaussians': 16, 'cutoff': 4.0},
              'heads': {'U0': {'type': 'energy'}}},
    'loss': [{'target': 'U0', 'fn': 'l1'}],
    'optim': {'lr': 3e-3}, 'schedule': {'warmup_steps': 10},
    'train': {'max_steps': 150, 'eval_every': 50, 'checkpoint_every': 50, 'eval_at_start': True,
              'progress': False, 'device': 'cpu'},
    'seed': 0}


def molkit(*args):
    "Run the installed console script and return its stdout; fail with its stderr."
    return _molkit(*args).stdout


def test_train_eval_predict_from_the_command_line(tmp_path):
    cfg = tmp_path / 'qm9.yaml'
    cfg.write_text(yaml.safe_dump({**CONFIG, 'run_dir': str(tmp_path / 'run')}))
    out = molkit('train', cfg, '--set', 'optim.weight_decay=0.0')
    assert '150 steps' in out
    evals = [json.loads(l) for l in (tmp_path / 'run' / 'evals.jsonl').read_text().splitlines()]
    mae = [e['val_U0_mae'] for e in evals]
    assert len(mae) >= 3 and mae[-1] < 0.5 * mae[0], mae  # validation MAE falls (eV)
    assert (tmp_path / 'run' / 'config.yaml').exists() and (tmp_path / 'run' / 'metrics.csv').exists()
    ckpt = tmp_path / 'run' / 'checkpoints' / 'best.pt'
    ckpt = ckpt if ckpt.exists() else sorted((tmp_path / 'run' / 'checkpoints').glob('step_*.pt'))[-1]
    table = molkit('eval', ckpt, '--split', 'test', '--out', tmp_path / 'm.json')
    metrics = json.loads((tmp_path / 'm.json').read_text())
    assert 'U0_mae' in table and np.isfinite(metrics['U0_mae']) and (tmp_path / 'm.csv').exists()
    molkit('predict', ckpt, '--split', 'test', '--out', tmp_path / 'p.npz')
    preds = np.load(tmp_path / 'p.npz')
    assert preds['U0'].shape == (50,) and np.isfinite(preds['U0']).all()
    assert np.abs(preds['U0']).mean() > 100  # physical units: QM9 total energies are ~ -1e4 eV


def test_a_misspelled_config_key_is_a_clear_error(tmp_path):
    cfg = tmp_path / 'bad.yaml'
    cfg.write_text(yaml.safe_dump({**CONFIG, 'optim': {'learning_rate': 1e-3}, 'run_dir': str(tmp_path / 'r')}))
    exe = Path(sys.executable).parent / 'molkit'
    p = subprocess.run([str(exe), 'train', str(cfg)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 2 and 'learning_rate' in p.stderr and 'lr' in p.stderr and 'Traceback' not in p.stderr

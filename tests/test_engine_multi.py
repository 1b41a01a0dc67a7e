"Training engine II from the command line: every registered backbone, two datasets in one run, exact resume, DMoE forces."
import os, signal, subprocess, sys, time
from pathlib import Path
import pytest, torch, yaml
from molkit.data.emt import EMTConfig, write_emt_dataset
from molkit.data.lmdb import write_lmdb
from molkit.models.base import load_backbones
from molkit.train.checkpoint import latest_checkpoint, load_checkpoint
from _train_helpers import ENV, molkit, toy_molecules


@pytest.fixture(scope='module')
def emt(tmp_path_factory) -> Path:
    "S2EF frames of 4 EMT relaxations (total energy, forces, fixed atoms, tags)."
    return write_emt_dataset(EMTConfig(n_systems=4, seed=3, max_steps=15), tmp_path_factory.mktemp('emt'), progress=False)['s2ef']

@pytest.fixture(scope='module')
def toy(tmp_path_factory) -> Path:
    return write_lmdb(toy_molecules(48), tmp_path_factory.mktemp('toy') / 'toy', progress=False)

# Smallest useful width of each registered backbone, or overrides of its 'tiny' preset (a new backbone needs one or
# the other, or the test says so). GemNet-OC fits its scale factors on the first batch, with few neighbours for speed.
TINY = {'schnet': {'hidden_dim': 8, 'num_filters': 8, 'num_interactions': 1, 'num_gaussians': 8, 'cutoff': 4.0},
        'painn': {'hidden_dim': 8, 'num_layers': 1, 'num_rbf': 8, 'cutoff': 4.0},
        'gemnet_oc': {'fit_scales': True, 'cutoff': 4.0, 'absolute_rbf_cutoff': 4.0, 'max_num_neighbors': 12}}

def _tiny(name: str) -> tuple[str | None, dict]:
    "The backbone's 'tiny' preset (with any TINY overrides), else the TINY config."
    cls = load_backbones()[name]
    if 'tiny' in cls.presets: return 'tiny', TINY.get(name, {})
    assert name in TINY, f"backbone {name!r} has no 'tiny' preset and no entry in TINY: add one so it is tested"
    return None, TINY[name]

@pytest.mark.parametrize('backbone', sorted(b for b in load_backbones() if not b.startswith('_')))
def test_every_backbone_trains_and_evaluates_from_the_cli(backbone, toy, tmp_path):
    preset, bcfg = _tiny(backbone)
    cfg = {'data': {'dataset': str(toy), 'split': {'train': 32, 'val': 16}, 'batch_size': 8, 'linear_reference': ['energy']},
           'model': {'backbone': backbone, 'preset': preset, 'backbone_cfg': bcfg,
                     'heads': {'energy': {'type': 'energy'}, 'forces': {'type': 'gradient_forces', 'energy': 'energy'}}},
           'loss': [{'target': 'energy'}, {'target': 'forces', 'fn': 'l2mae'}],
           'train': {'max_steps': 3, 'eval_every': 0, 'progress': False, 'device': 'cpu'}, 'run_dir': str(tmp_path / 'run')}
    (tmp_path / 'c.yaml').write_text(yaml.safe_dump(cfg))
    molkit('train', tmp_path / 'c.yaml')
    out = molkit('eval', tmp_path / 'run' / 'best.pt', '--split', 'val').stdout
    assert 'energy_mae' in out and 'forces_mae' in out, out

def two_dataset_config(run_dir: Path, emt: Path, max_steps: int = 30, **train) -> dict:
    "Embedded QM9 (U0) and EMT S2EF frames (total energy + gradient forces) on one tiny SchNet."
    return {'data': {'datasets': [{'name': 'qm9', 'source': 'qm9_subset', 'limit': 80, 'split': {'train': 60, 'val': 20},
                                   'linear_reference': ['U0']},
                                  {'name': 'emt', 'source': str(emt), 'split': {'train': 0.75, 'val': 0.25},
                                   'linear_reference': ['energy']}],
                     'temperature': 2.0, 'batch_size': 8},
            'model': {'backbone': 'schnet', 'backbone_cfg': TINY['schnet'],
                      'heads': {'qm9/U0': {'type': 'energy'}, 'emt/energy': {'type': 'energy'},
                                'emt/forces': {'type': 'gradient_forces', 'energy': 'emt/energy'}}},
            'loss': [{'target': 'qm9/U0'}, {'target': 'emt/energy'},
                     {'target': 'emt/forces', 'fn': 'l2mae', 'weight': 10, 'reduction': 'structurewise', 'free_atoms_only': True}],
            'optim': {'lr': 2e-3}, 'ema': {'decay': 0.9},
            'train': {'max_steps': max_steps, 'eval_every': 10, 'checkpoint_every': 10, 'log_every': 1, 'progress': False,
                      'device': 'cpu', **train}, 'seed': 0, 'run_dir': str(run_dir)}

def test_two_datasets_train_and_report_per_dataset(emt, tmp_path):
    (tmp_path / 'c.yaml').write_text(yaml.safe_dump(two_dataset_config(tmp_path / 'run', emt)))
    molkit('train', tmp_path / 'c.yaml')
    rows = [yaml.safe_load(l) for l in (tmp_path / 'run' / 'evals.jsonl').read_text().splitlines()]
    for k in ('val_qm9/U0_mae', 'val_emt/energy_mae', 'val_emt/forces_mae', 'val_emt/energy_within_threshold',
              'val_emt/energy_force_within_threshold'):
        assert k in rows[-1], (k, sorted(rows[-1]))
    ck = load_checkpoint(tmp_path / 'run' / 'best.pt')
    assert set(ck['normalizers']) == {'qm9/U0', 'emt/energy', 'emt/forces'}
    assert ck['normalizers']['qm9/U0']['refs'] is not None and ck['normalizers']['emt/energy']['refs'] is not None
    out = molkit('eval', tmp_path / 'run' / 'best.pt', '--split', 'val').stdout
    assert 'qm9/U0_mae' in out and 'emt/forces_mae' in out
    out = molkit('eval', tmp_path / 'run' / 'best.pt', emt, '--task', 'emt').stdout
    assert 'emt/energy_mae' in out and 'qm9/U0' not in out

def test_bad_multi_dataset_configs_fail_before_training(emt, tmp_path):
    cases = {"dataset 'emt'": lambda c: c['model']['heads'].update({'emt/U0': {'type': 'energy'}}) or c['loss'].append({'target': 'emt/U0'}),
             "two datasets named 'qm9'": lambda c: c['data']['datasets'][1].update(name='qm9'),
             "'emt/e' is not a head": lambda c: c['model']['heads']['emt/forces'].update(energy='emt/e'),
             'temperature must be > 0': lambda c: c['data'].update(temperature=-1),
             "loss.0.target: 'qm9/gap' is not a head": lambda c: c['loss'][0].update(target='qm9/gap')}
    for msg, edit in cases.items():
        c = two_dataset_config(tmp_path / 'bad', emt); edit(c)
        (tmp_path / 'bad.yaml').write_text(yaml.safe_dump(c))
        p = molkit('train', tmp_path / 'bad.yaml', check=False)
        assert p.returncode != 0 and msg in p.stderr and 'Traceback' not in p.stderr, (msg, p.stderr[-800:])
        assert not (tmp_path / 'bad' / 'checkpoints').exists()

_SCRIPT = "import sys; from molkit.train.loop import train; train(sys.argv[1], resume=True)"

def test_sigkill_and_resume_with_two_datasets(emt, tmp_path):
    "A two-dataset run SIGKILLed after a checkpoint resumes to the uninterrupted run's weights, bit for bit."
    paths = {}
    for name in ('ref', 'killed'):
        paths[name] = tmp_path / f'{name}.yaml'
        paths[name].write_text(yaml.safe_dump(two_dataset_config(tmp_path / name, emt, max_steps=60, checkpoint_every=5)))
    run = lambda p, **kw: subprocess.Popen([sys.executable, '-c', _SCRIPT, str(p)], env=ENV, **kw)
    assert run(paths['ref']).wait(timeout=600) == 0
    p = run(paths['killed'], stderr=subprocess.DEVNULL)
    ckpts, t0 = tmp_path / 'killed' / 'checkpoints', time.time()
    while latest_checkpoint(ckpts) is None and p.poll() is None and time.time() - t0 < 600: time.sleep(0.02)
    assert p.poll() is None, "the run finished before it could be killed"
    os.kill(p.pid, signal.SIGKILL); p.wait()
    assert 0 < load_checkpoint(latest_checkpoint(ckpts))['step'] < 60
    assert run(paths['killed']).wait(timeout=600) == 0
    a, b = (load_checkpoint(latest_checkpoint(tmp_path / n / 'checkpoints')) for n in ('ref', 'killed'))
    assert a['step'] == b['step'] == 60
    for k in a['model']: assert torch.equal(a['model'][k], b['model'][k]), k

def test_dmoe_energy_drives_conservative_forces(toy, tmp_path):
    "A distribution energy head with gradient forces trains from the CLI; forces are reported and improve."
    cfg = {'data': {'dataset': str(toy), 'split': {'train': 32, 'val': 16}, 'batch_size': 8, 'linear_reference': ['energy']},
           'model': {'backbone': 'schnet', 'backbone_cfg': TINY['schnet'],
                     'heads': {'energy': {'type': 'dist', 'bins': {'num_bins': 32}, 'head': {'hidden_dim': 16}},
                               'forces': {'type': 'gradient_forces', 'energy': 'energy'}}},
           'loss': [{'target': 'energy', 'fn': 'dmoe'}, {'target': 'forces', 'fn': 'l2mae', 'weight': 5}],
           'optim': {'lr': 3e-3},
           'train': {'max_steps': 40, 'eval_every': 20, 'eval_at_start': True, 'progress': False, 'device': 'cpu'},
           'run_dir': str(tmp_path / 'run')}
    (tmp_path / 'c.yaml').write_text(yaml.safe_dump(cfg))
    molkit('train', tmp_path / 'c.yaml')
    rows = [yaml.safe_load(l) for l in (tmp_path / 'run' / 'evals.jsonl').read_text().splitlines()]
    assert rows[-1]['val_forces_mae'] < rows[0]['val_forces_mae'], [r['val_forces_mae'] for r in rows]
    assert 'val_energy_nll' in rows[-1]

def test_eval_warns_about_elements_never_seen_in_training(toy, tmp_path):
    "A model trained on H/C/O, evaluated on structures with N: eval names the element and the count."
    cfg = {'data': {'dataset': str(toy), 'split': {'train': 32, 'val': 16}, 'batch_size': 8, 'linear_reference': ['energy']},
           'model': {'backbone': 'schnet', 'backbone_cfg': TINY['schnet'], 'heads': {'energy': {'type': 'energy'}}},
           'loss': [{'target': 'energy'}], 'train': {'max_steps': 2, 'progress': False, 'device': 'cpu'},
           'run_dir': str(tmp_path / 'run')}
    (tmp_path / 'c.yaml').write_text(yaml.safe_dump(cfg))
    molkit('train', tmp_path / 'c.yaml')
    mols = toy_molecules(6, seed=5)
    for d in mols[:3]: d.z = torch.full_like(d.z, 7)
    other = write_lmdb(mols, tmp_path / 'with_n', progress=False)
    p = molkit('eval', tmp_path / 'run' / 'best.pt', other)
    assert '3 structure(s)' in p.stderr and 'never seen in training (N)' in p.stderr, p.stderr[-500:]
    p = molkit('eval', tmp_path / 'run' / 'best.pt', '--split', 'val')
    assert 'never seen' not in p.stderr

def test_finetune_from_the_cli(toy, tmp_path):
    "Pre-train energy + forces, fine-tune the backbone with a new head and layer-wise LRs; a mismatched backbone fails."
    pre = {'data': {'dataset': str(toy), 'split': {'train': 32, 'val': 16}, 'batch_size': 8, 'linear_reference': ['energy']},
           'model': {'backbone': 'schnet', 'backbone_cfg': TINY['schnet'], 'heads': {'energy': {'type': 'energy'}}},
           'loss': [{'target': 'energy'}], 'ema': {'decay': 0.9},
           'train': {'max_steps': 5, 'progress': False, 'device': 'cpu'}, 'run_dir': str(tmp_path / 'pre')}
    (tmp_path / 'pre.yaml').write_text(yaml.safe_dump(pre))
    molkit('train', tmp_path / 'pre.yaml')
    ft = {**pre, 'model': {**pre['model'], 'heads': {'forces': {'type': 'direct_forces'}}},
          'loss': [{'target': 'forces', 'fn': 'l2mae'}], 'optim': {'layer_lr': [0.3, 0.6]}, 'run_dir': str(tmp_path / 'ft')}
    (tmp_path / 'ft.yaml').write_text(yaml.safe_dump(ft))
    molkit('finetune', tmp_path / 'pre' / 'best.pt', tmp_path / 'ft.yaml')
    a, b = load_checkpoint(tmp_path / 'pre' / 'best.pt'), load_checkpoint(tmp_path / 'ft' / 'best.pt')
    assert b['config']['init']['checkpoint'].endswith('best.pt') and 'heads.forces.mlp.0.weight' in b['model']
    p = molkit('finetune', tmp_path / 'pre' / 'best.pt', tmp_path / 'ft.yaml', '--set', 'optim.layer_lr=[1.0]',
               '--set', f"run_dir={tmp_path / 'ft2'}", check=False)
    assert p.returncode != 0 and 'optim.layer_lr: 1 multipliers for the 2 blocks' in p.stderr and 'Traceback' not in p.stderr
    p = molkit('finetune', tmp_path / 'pre' / 'best.pt', tmp_path / 'ft.yaml', '--set', 'model.backbone_cfg.hidden_dim=16',
               '--set', f"run_dir={tmp_path / 'ft3'}", check=False)
    assert p.returncode != 0 and 'its model.backbone_cfg is' in p.stderr

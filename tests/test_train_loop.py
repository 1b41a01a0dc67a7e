"The training loop end to end on tiny synthetic data: energy + gradient forces, epochs, accumulation, lr scales, evaluate/predict."
import math
from pathlib import Path
import pytest, torch
from molkit.data.lmdb import LMDBDataset, write_lmdb
from molkit.train.checkpoint import latest_checkpoint, load_checkpoint
from molkit.train.loop import evaluate, predict, train
from _train_helpers import toy_config, toy_molecules

@pytest.fixture(scope='module')
def toy_lmdb(tmp_path_factory) -> str:
    return str(write_lmdb(toy_molecules(64), tmp_path_factory.mktemp('data') / 'toy', progress=False))

def test_energy_and_forces_learn(toy_lmdb, tmp_path):
    cfg = toy_config(tmp_path / 'run', toy_lmdb, max_steps=120, eval_every=60, eval_at_start=True)
    cfg['model']['heads'] = {'energy': {'type': 'energy'}, 'forces': {'type': 'gradient_forces', 'energy': 'energy'}}
    cfg['loss'] = [{'target': 'energy', 'fn': 'l1'},
                   {'target': 'forces', 'fn': 'l2mae', 'weight': 10.0, 'reduction': 'structurewise', 'free_atoms_only': True}]
    cfg['optim']['lr'] = 5e-3
    res = train(cfg)
    first, last = res.evals[0], res.evals[-1]
    assert last['val_forces_mae'] < first['val_forces_mae'] and last['val_energy_mae'] < first['val_energy_mae'], (first, last)
    ck = res.checkpoint
    m = evaluate(ck, split='val', progress=False)
    assert math.isclose(m['forces_mae'], last['val_forces_mae'], rel_tol=1e-6)
    ds = LMDBDataset(toy_lmdb)
    p = predict(ck, toy_lmdb, batch_size=7, progress=False)
    assert p['energy'].dtype == torch.float64 and p['energy'].shape == (len(ds),)
    assert p['forces'].dtype == torch.float32 and p['forces'].shape == (int(ds.natoms.sum()), 3)
    one = predict(ck, [ds[3]], progress=False)  # a sequence of Data works too; order is kept
    torch.testing.assert_close(one['energy'], p['energy'][3:4])

def test_epochs_accumulation_and_lr_scales(toy_lmdb, tmp_path):
    cfg = toy_config(tmp_path / 'run', toy_lmdb, max_steps=None, max_epochs=2, eval_every=0, checkpoint_every=0)
    cfg['optim'].update(grad_accum=5, lr_scales={'backbone': 0.1}, clip_grad_value=1.0)
    cfg['schedule'] = {'name': 'constant'}
    res = train(cfg)
    assert res.step == 2 * math.ceil(12 / 5)  # 48 train structures / 4 = 12 batches per epoch, 5 per step
    ck = load_checkpoint(latest_checkpoint(Path(res.run_dir) / 'checkpoints'))
    lrs = sorted({g['lr'] for g in ck['optimizer']['param_groups']})
    assert lrs == pytest.approx([2e-4, 2e-3])
    assert (ck['epoch'], ck['batch_in_epoch']) == (1, 12)
    lines = (Path(res.run_dir) / 'epochs.jsonl').read_text().splitlines()
    assert len(lines) == 1  # the run stopped at the last step of epoch 1, before closing it

def test_unknown_config_key_fails(toy_lmdb, tmp_path):
    cfg = toy_config(tmp_path / 'run', toy_lmdb)
    cfg['optim']['loss_force'] = 'l2mae'
    with pytest.raises(ValueError, match="unknown key 'loss_force'"): train(cfg)


def test_saved_split_file_is_used(toy_lmdb, tmp_path):
    "A split written next to the data (`molkit data split`) is what training uses when `data.split_file` names it."
    from molkit.data.splits import random_split, save_split
    from molkit.train.data import DataConfig, build_splits
    split = random_split(64, {'train': 40, 'val': 12, 'test': None}, seed=5)
    save_split(split, toy_lmdb, 'mine', n_records=64)
    got = build_splits(DataConfig(dataset=str(toy_lmdb), split_file='mine'))
    assert {k: list(v.indices) for k, v in got.items()} == {k: v.tolist() for k, v in split.items()}
    cfg = toy_config(tmp_path / 'run', str(toy_lmdb), max_steps=2)
    cfg['data'] = {**cfg['data'], 'split_file': str(Path(toy_lmdb) / 'splits' / 'mine.json')}
    assert train(cfg).step == 2


def test_nan_labels_stop_before_training(tmp_path):
    "A NaN energy makes non-finite normalisers: a clear error instead of a run that skips every step."
    mols = toy_molecules(64)
    bad = [m.clone() for m in mols]; bad[3].energy = torch.tensor([float('nan')], dtype=torch.float64)
    with pytest.raises(ValueError, match="record 3: field 'energy' holds NaN"): write_lmdb(bad, tmp_path / 'refused', progress=False)
    # a dataset written before molkit checked labels on write (schema 1) can still hold one: the engine stops too
    import sys; sys.path.insert(0, str(Path(__file__).parent)); from bad_inputs import _as_schema1
    ds = write_lmdb(mols, tmp_path / 'nan', progress=False)
    _as_schema1(ds, edit=lambda i, g: g.energy.fill_(float('nan')) if i == 3 else None)
    with pytest.raises(ValueError, match="target 'energy' is nan; statistics need finite labels|non-finite normalisers"):
        train(toy_config(tmp_path / 'run', str(ds), max_steps=2))

def test_workers_persist_across_epochs_with_the_same_batches(toy_lmdb, tmp_path):
    "Two persistent DataLoader workers with prefetch give the batches of the in-process loader, epoch after epoch."
    weights = {}
    for w in (0, 2):
        cfg = toy_config(tmp_path / f'w{w}', toy_lmdb, max_steps=None, max_epochs=3, eval_every=0, checkpoint_every=0)
        cfg['data'].update(num_workers=w, prefetch_factor=3)
        res = train(cfg)
        assert res.step == 3 * 12  # 48 train structures / 4 per batch, 3 epochs
        weights[w] = load_checkpoint(latest_checkpoint(Path(res.run_dir) / 'checkpoints'))['model']
    for k, v in weights[0].items(): torch.testing.assert_close(weights[2][k], v, msg=k)

def test_edges_built_in_the_loader_train_the_same(toy_lmdb, tmp_path):
    "`data.edges: loader` (radius graphs in a DataLoader worker) trains to the same weights as graphs built in the forward."
    weights = {}
    for edges, w in (('model', 0), ('loader', 1)):
        cfg = toy_config(tmp_path / edges, toy_lmdb, max_steps=8, eval_every=0, checkpoint_every=0)
        cfg['model']['heads']['forces'] = {'type': 'gradient_forces', 'energy': 'energy'}
        cfg['loss'].append({'target': 'forces', 'fn': 'l2mae', 'reduction': 'structurewise'})
        cfg['data'].update(edges=edges, num_workers=w)
        weights[edges] = load_checkpoint(latest_checkpoint(Path(train(cfg).run_dir) / 'checkpoints'))['model']
    for k, v in weights['model'].items(): torch.testing.assert_close(weights['loader'][k], v, msg=k)
    cfg = toy_config(tmp_path / 'g', toy_lmdb, max_steps=2)
    cfg['model'].update(backbone='gemnet_oc', preset='tiny', backbone_cfg={})
    cfg['data']['edges'] = 'loader'
    with pytest.raises(Exception, match="needs a backbone that reads stored edges"): train(cfg)

class _HostReads:
    """Count tensor -> Python conversions (`item`, `tolist`, `bool`, `float`, `int`): each is a host–device sync on a GPU.
    Calls from `torch.optim` are not counted: Adam's step counters live on the host unless `capturable`/`fused`."""
    NAMES = ('item', 'tolist', '__bool__', '__float__', '__int__')
    def __enter__(self):
        import sys
        self.n, self.saved = 0, {k: getattr(torch.Tensor, k) for k in self.NAMES}
        def counted(f):
            def g(*a, **k):
                self.n += '/torch/optim/' not in sys._getframe(1).f_code.co_filename
                return f(*a, **k)
            return g
        for k, f in self.saved.items(): setattr(torch.Tensor, k, counted(f))
        return self
    def __exit__(self, *exc):
        for k, f in self.saved.items(): setattr(torch.Tensor, k, f)

@pytest.mark.parametrize('loss', ['l1', 'dmoe'])
def test_one_host_read_per_training_step(toy_lmdb, tmp_path, loss):
    "With edges from the loader, a training step (energy + forces, or a DMoE head) reads the device once: one `tolist`."
    from molkit.train.loop import Run, build_splits, load_config, task_labels
    cfg = toy_config(tmp_path / loss, toy_lmdb, max_steps=5)
    if loss == 'dmoe': cfg['model']['heads']['energy'] = {'type': 'dist'}
    cfg['model']['heads']['forces'] = {'type': 'gradient_forces', 'energy': 'energy'}
    cfg['loss'] = [{'target': 'energy', 'fn': loss}, {'target': 'forces', 'fn': 'l2mae', 'reduction': 'structurewise'}]
    cfg['data']['edges'] = 'loader'
    c = load_config(cfg)
    run = Run(c, build_splits(c.data, task_labels(c.model)), torch.device('cpu'))
    groups = run.step_groups()
    run.train_step(next(groups))  # the first step also checks and caches a distribution head's bins
    for _ in range(3):
        batches = next(groups)
        with _HostReads() as reads: out = run.train_step(batches)
        assert reads.n == 1, reads.n
    assert math.isfinite(out['loss']) and out['grad_norm'] > 0 and not out['skipped']

def test_schedule_and_cadence_in_epochs(toy_lmdb, tmp_path):
    "`schedule.warmup_epochs`/`total_epochs` and `train.eval_every_epochs`/`checkpoint_every_epochs` count epochs (JMP)."
    import json, yaml
    cfg = toy_config(tmp_path / 'run', toy_lmdb, max_steps=None, max_epochs=3, eval_every_epochs=1, checkpoint_every_epochs=1)
    cfg['schedule'] = {'warmup_epochs': 1, 'total_epochs': 2, 'start_factor': 0.1, 'min_factor': 0.1}
    res = train(cfg)  # 48 structures / 4 per batch: 12 steps per epoch
    assert [json.loads(l)['step'] for l in (Path(res.run_dir) / 'evals.jsonl').read_text().splitlines()] == [12, 24, 36]
    saved = yaml.safe_load((Path(res.run_dir) / 'config.yaml').read_text())
    assert (saved['schedule']['warmup_steps'], saved['schedule']['total_steps']) == (12, 24)
    lr = {json.loads(l)['step']: json.loads(l)['lr'] for l in (Path(res.run_dir) / 'steps.jsonl').read_text().splitlines()}
    assert lr[12] == pytest.approx(2e-3) and lr[24] == pytest.approx(2e-4) and lr[36] == pytest.approx(2e-4)
    assert sorted(p.name for p in (Path(res.run_dir) / 'checkpoints').iterdir())[-1] == 'step_00000036.pt'

def test_max_atoms_caps_training_batches(toy_lmdb, tmp_path):
    "`data.max_atoms` closes batches early: each step's batch stays under the cap (unless one structure exceeds it)."
    import json
    cfg = toy_config(tmp_path / 'run', toy_lmdb, max_steps=None, max_epochs=1, eval_every=0, checkpoint_every=0, log_every=1)
    cfg['data'].update(batch_size=8, max_atoms=20)
    res = train(cfg)
    atoms = [json.loads(l)['atoms'] for l in (Path(res.run_dir) / 'steps.jsonl').read_text().splitlines()]
    natoms = LMDBDataset(toy_lmdb).natoms
    assert all(a <= 20 or a <= int(natoms.max()) for a in atoms) and res.step == len(atoms) > 48 // 8, atoms

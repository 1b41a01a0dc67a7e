"Issue 14 (JMP): released-checkpoint loading from the CLI, layer-wise LRs of GemNet-OC, the structure-wise force loss, temperature sampling and a two-dataset pre-train -> fine-tune round trip."
import dataclasses, math, os, subprocess, sys
from pathlib import Path
import pytest, torch, yaml
from torch_geometric.data import Batch, Data
from molkit.data.lmdb import write_lmdb
from molkit.models.gemnet_oc.model import GEMNET_OC_PRESETS, GemNetOC
from molkit.train.checkpoint import load_checkpoint
from molkit.train.jmp import jmp_lightning_checkpoint
from _train_helpers import ENV, molkit, toy_molecules


class HyperParameters:
    "Stands for the pickled config objects in the hyper_parameters of a released JMP checkpoint."
    def __init__(self): self.backbone = 'gemnet_oc'

@pytest.fixture(scope='module')
def toy(tmp_path_factory) -> Path:
    return write_lmdb(toy_molecules(24), tmp_path_factory.mktemp('toy') / 'toy', progress=False)

@pytest.fixture(scope='module')
def jmp_file(tmp_path_factory):
    "A JMP-layout Lightning checkpoint of a tiny GemNet-OC: fitted-looking scale factors, EMA = 0.9 x live weights."
    torch.manual_seed(0)
    src = GemNetOC(GEMNET_OC_PRESETS['tiny'])
    for i, (n, b) in enumerate(b for b in src.named_buffers() if b[0].endswith('scale_factor')): b.fill_(1.0 + 0.01 * i)
    ema = {k: 0.9 * v.detach() for k, v in src.named_parameters()}
    path = tmp_path_factory.mktemp('jmp') / 'jmp-tiny.pt'
    torch.save({**jmp_lightning_checkpoint(src, ema), 'hyper_parameters': HyperParameters()}, path)
    return path, ema, src

def _ft_config(toy: Path, run_dir: Path) -> dict:
    "Fine-tune the tiny GemNet-OC on a new energy head, backbone frozen (LR scale 0) so its weights stay the loaded ones."
    return {'data': {'dataset': str(toy), 'split': {'train': 16, 'val': 8}, 'batch_size': 8, 'linear_reference': ['energy']},
            'model': {'backbone': 'gemnet_oc', 'preset': 'tiny', 'backbone_cfg': {'direct_forces': False},
                      'heads': {'energy': {'type': 'energy'}}},
            'loss': [{'target': 'energy'}], 'optim': {'lr_scales': {'backbone': 0.0}},
            'train': {'max_steps': 2, 'eval_every': 0, 'progress': False, 'device': 'cpu'}, 'run_dir': str(run_dir)}

def test_finetune_from_a_jmp_checkpoint(toy, jmp_file, tmp_path):
    "`molkit finetune jmp.pt CONFIG`: refused without --trusted, then the backbone starts from the EMA weights."
    path, ema, src = jmp_file
    (tmp_path / 'ft.yaml').write_text(yaml.safe_dump(_ft_config(toy, tmp_path / 'ft')))
    p = molkit('finetune', path, tmp_path / 'ft.yaml', check=False)
    assert p.returncode == 2 and 'init.trusted: true (molkit finetune --trusted)' in p.stderr and 'Traceback' not in p.stderr, p.stderr[-1500:]
    assert not (tmp_path / 'ft' / 'checkpoints').exists()
    p = molkit('finetune', path, tmp_path / 'ft.yaml', '--trusted')
    assert 'full unpickle' in p.stderr
    ck = load_checkpoint(tmp_path / 'ft' / 'best.pt')
    assert ck['config']['init']['trusted'] is True and ck['config']['init']['format'] == 'auto'
    w = {k[len('backbone.'):]: v for k, v in ck['model'].items() if k.startswith('backbone.')}
    assert set(w) == {k for k in src.state_dict() if not k.startswith('out_mlp_F') and '_F.' not in k and 'seq_forces' not in k}
    for k, v in w.items():
        want = ema[k] if k in ema else src.state_dict()[k]  # parameters: the EMA; scale factors: the file's
        assert torch.equal(v, want), k
    assert 'heads.energy.mlp.0.weight' in ck['model']
    p = molkit('eval', tmp_path / 'ft' / 'best.pt', '--split', 'val')  # evaluation does not reopen the JMP file
    assert 'energy_mae' in p.stdout and 'unpickle' not in p.stderr, p.stderr[-1500:]

def test_jmp_checkpoint_that_does_not_match_the_config(toy, jmp_file, tmp_path):
    path = jmp_file[0]
    (tmp_path / 'ft.yaml').write_text(yaml.safe_dump(_ft_config(toy, tmp_path / 'ft')))
    p = molkit('finetune', path, tmp_path / 'ft.yaml', '--trusted', '--set', 'model.backbone_cfg.emb_size_edge=16', check=False)
    assert p.returncode == 2 and 'its GemNet-OC backbone does not match' in p.stderr and 'shapes differ' in p.stderr, p.stderr[-1500:]
    p = molkit('finetune', path, tmp_path / 'ft.yaml', '--trusted', '--set', 'model.backbone=schnet', '--set', 'model.preset=null',
               '--set', 'model.backbone_cfg={}', check=False)
    assert p.returncode == 2 and 'set model.backbone: gemnet_oc' in p.stderr, p.stderr[-1500:]

def test_layer_lr_of_every_parameter_group():
    "GemNet-OC tiny with JMP-style layer-wise LRs: every parameter's group LR, at the start, at warmup and at the cosine floor."
    from molkit.train.model import ModelConfig, build_model, param_blocks
    from molkit.train.config import from_dict
    from molkit.train.schedules import LRSchedule, OptimConfig, build_optimizer, jmp_finetune_schedule
    cfg = from_dict(ModelConfig, {'backbone': 'gemnet_oc', 'preset': 'tiny', 'backbone_cfg': {'direct_forces': False},
                                  'heads': {'y': {'type': 'scalar', 'reduce': 'mean'}}})
    model, lr, scales = build_model(cfg), 8e-5, [0.3, 0.55, 0.625]
    opt = build_optimizer(model, OptimConfig(lr=lr, weight_decay=0.1), param_blocks(model, scales))
    group = {id(p): g for g in opt.param_groups for p in g['params']}
    def expected(name: str) -> float:
        if name.startswith('backbone.atom_emb.'): return scales[0]
        if name.startswith(('backbone.int_blocks.0.', 'backbone.out_blocks.0.', 'backbone.out_blocks.1.')): return scales[1]
        if name.startswith(('backbone.int_blocks.1.', 'backbone.out_blocks.2.')): return scales[2]
        return 1.0  # bases, global output MLP, the new head
    names = dict(model.named_parameters())
    assert len(names) == sum(len(g['params']) for g in opt.param_groups)  # every parameter in exactly one group
    for n, p in names.items():
        g = group[id(p)]
        assert math.isclose(g['lr'], lr * expected(n)), (n, g['lr'])
        no_decay = n.startswith('backbone.atom_emb.') or n.endswith('bias')  # molkit's default: no decay on embeddings, biases
        assert g['weight_decay'] == (0.0 if no_decay else 0.1), n
    sched = LRSchedule(jmp_finetune_schedule(steps_per_epoch=10))
    sched.apply(opt, 0)
    for n, p in names.items(): assert math.isclose(group[id(p)]['lr'], 0.1 * lr * expected(n)), n  # warmup from 0.1x
    sched.apply(opt, 320)  # end of the cosine (epoch 32): every group near 0.1 x the base LR (JMP's scaled floors)
    for n, p in names.items():
        s = expected(n)
        assert math.isclose(group[id(p)]['lr'], lr * s * min(max(0.1 / s, 0.01), 0.99)), n
        assert math.isclose(group[id(p)]['lr'], 0.1 * lr, rel_tol=0.12), n

def test_structurewise_force_loss_against_a_hand_computation():
    "JMP's structure-wise force loss: per-atom L2 norm, mean within each structure, mean over the structures of the task."
    from molkit.train.losses import LossSpec, total_loss
    g = torch.Generator().manual_seed(0)
    sizes = [1, 2, 5]
    b = Batch.from_data_list([Data(z=torch.ones(n, dtype=torch.long), pos=torch.zeros(n, 3), natoms=torch.tensor([n]),
                                   fixed=torch.zeros(n, dtype=torch.bool)) for n in sizes])
    pred, target = torch.randn(8, 3, generator=g), torch.randn(8, 3, generator=g)
    err = [float(torch.linalg.norm(pred[i] - target[i])) for i in range(8)]
    per_structure = [sum(err[0:1]) / 1, sum(err[1:3]) / 2, sum(err[3:8]) / 5]
    hand = {'structurewise': sum(per_structure) / 3, 'atomwise': sum(err) / 8,
            'structurewise_valid': (per_structure[0] + per_structure[2]) / 2}  # structure 1 from another dataset
    for red in ('structurewise', 'atomwise'):
        loss, _ = total_loss([LossSpec('forces', 'l2mae', 1.0, red)], {'forces': pred}, {'forces': target}, b)
        assert math.isclose(float(loss), hand[red], rel_tol=1e-6), (red, float(loss), hand[red])
    valid = {'forces': torch.tensor([True, False, True])}
    loss, _ = total_loss([LossSpec('forces', 'l2mae', 3.0, 'structurewise')], {'forces': pred}, {'forces': target}, b, valid=valid)
    assert math.isclose(float(loss), 3.0 * hand['structurewise_valid'], rel_tol=1e-6)

def test_temperature_sampling_proportions(tmp_path):
    "Expanded training set: dataset proportions ∝ |D_i|^(1/T), nothing subsampled, small datasets repeated whole."
    from molkit.train.data import DATASET_ID, DataConfig, build_splits, expansion_counts, temperature_probs
    sizes = [100e6, 8.2e6, 3.96e6, 7.6e6]  # the JMP pre-training mix, approximate sizes
    p = temperature_probs(sizes, 2.0)
    hand = [math.sqrt(n) / sum(math.sqrt(m) for m in sizes) for n in sizes]
    assert all(math.isclose(a, b) for a, b in zip(p, hand)) and [round(x, 3) for x in p] == [0.568, 0.163, 0.113, 0.157]
    assert temperature_probs(sizes, 1.0) == pytest.approx([n / sum(sizes) for n in sizes])
    assert temperature_probs(sizes, math.inf) == pytest.approx([0.25] * 4)
    small, big = (write_lmdb(toy_molecules(n, seed=n), tmp_path / f'd{n}', progress=False) for n in (10, 40))
    for T, want in [(1.0, [10, 40]), (2.0, [20, 40]), (math.inf, [40, 40])]:
        cfg = DataConfig(datasets=[{'name': 'small', 'source': str(small), 'split': {'train': 10}},
                                   {'name': 'big', 'source': str(big), 'split': {'train': 40}}], temperature=T)
        train = build_splits(cfg)['train']
        ids = [int(train[k][DATASET_ID]) for k in range(len(train))]
        assert [ids.count(0), ids.count(1)] == want == expansion_counts([10, 40], T), T
        seen = [train.locate(k)[1] for k in range(len(train)) if ids[k] == 0]
        assert sorted(seen) == sorted(list(range(10)) * (want[0] // 10)), T  # every small record equally often
    v = build_splits(DataConfig(datasets=[{'name': 'small', 'source': str(small), 'split': {'train': 5, 'val': 5}},
                                          {'name': 'big', 'source': str(big), 'split': {'train': 20, 'val': 20}}],
                                temperature=2.0))['val']
    assert len(v) == 25  # validation is not expanded (T = 1)

@pytest.fixture(scope='module')
def emt(tmp_path_factory) -> Path:
    from molkit.data.emt import EMTConfig, write_emt_dataset
    return write_emt_dataset(EMTConfig(n_systems=3, seed=3, max_steps=10), tmp_path_factory.mktemp('emt'), progress=False)['s2ef']

def test_pretrain_two_datasets_then_finetune_a_new_target(emt, tmp_path):
    "Pre-train SchNet on QM9 U0 + EMT energy/forces (T = 2, structure-wise forces), fine-tune on QM9 gap from the CLI."
    tiny = {'hidden_dim': 8, 'num_filters': 8, 'num_interactions': 1, 'num_gaussians': 8, 'cutoff': 4.0}
    pre = {'data': {'datasets': [{'name': 'qm9', 'source': 'qm9_subset', 'limit': 40, 'split': {'train': 30, 'val': 10},
                                  'linear_reference': ['U0']},
                                 {'name': 'emt', 'source': str(emt), 'split': {'train': 0.75, 'val': 0.25},
                                  'linear_reference': ['energy']}], 'temperature': 2.0, 'batch_size': 8},
           'model': {'backbone': 'schnet', 'backbone_cfg': tiny,
                     'heads': {'qm9/U0': {'type': 'energy'}, 'emt/energy': {'type': 'energy'},
                               'emt/forces': {'type': 'gradient_forces', 'energy': 'emt/energy'}}},
           'loss': [{'target': 'qm9/U0'}, {'target': 'emt/energy'},
                    {'target': 'emt/forces', 'fn': 'l2mae', 'weight': 10, 'reduction': 'structurewise'}],
           'optim': {'lr': 2e-3}, 'ema': {'decay': 0.9},
           'train': {'max_steps': 10, 'eval_every': 0, 'progress': False, 'device': 'cpu'}, 'run_dir': str(tmp_path / 'pre')}
    (tmp_path / 'pre.yaml').write_text(yaml.safe_dump(pre))
    molkit('train', tmp_path / 'pre.yaml')
    ft = {'data': {'dataset': 'qm9_subset', 'limit': 40, 'split': {'train': 30, 'val': 10}, 'batch_size': 8},
          'model': {'backbone': 'schnet', 'backbone_cfg': tiny, 'heads': {'gap': {'type': 'scalar', 'reduce': 'mean'}}},
          'loss': [{'target': 'gap'}], 'optim': {'lr': 1e-3, 'layer_lr': [0.3, 0.625]},
          'train': {'max_steps': 5, 'eval_every': 5, 'progress': False, 'device': 'cpu'}, 'run_dir': str(tmp_path / 'ft')}
    (tmp_path / 'ft.yaml').write_text(yaml.safe_dump(ft))
    molkit('finetune', tmp_path / 'pre' / 'best.pt', tmp_path / 'ft.yaml')
    a, b = load_checkpoint(tmp_path / 'pre' / 'best.pt'), load_checkpoint(tmp_path / 'ft' / 'best.pt')
    assert {k.split('.')[1] for k in b['model'] if k.startswith('heads.')} == {'gap'}  # pre-training heads dropped
    # QM9 has no Cu, Au, Pt...: their embedding rows get no gradient while fine-tuning, so they are still the
    # pre-training EMA rows, which shows the backbone started from the EMA weights
    qm9_z = {1, 6, 7, 8, 9}
    emb_pre, emb_ft = a['ema']['shadow']['backbone.embedding.weight'], b['model']['backbone.embedding.weight']
    other = [z for z in range(emb_pre.shape[0]) if z not in qm9_z]
    assert torch.equal(emb_ft[other], emb_pre[other])
    assert not torch.equal(emb_ft[1], emb_pre[1])  # H was trained
    assert not torch.equal(a['model']['backbone.embedding.weight'][other], emb_pre[other])  # the EMA differs from the live weights
    rows = [yaml.safe_load(l) for l in (tmp_path / 'ft' / 'evals.jsonl').read_text().splitlines()]
    assert 'val_gap_mae' in rows[-1]

PRESETS = sorted((Path(__file__).resolve().parents[1] / 'configs' / 'jmp').rglob('*.yaml'))

def test_presets_exist():
    names = {p.stem for p in PRESETS}
    assert {'jmp_s', 'jmp_l'} <= names
    for task in ('qm9', 'rmd17', 'md22', 'spice', 'matbench_jdft2d', 'qmof'): assert {f'{task}_s', f'{task}_l'} <= names, task

@pytest.mark.parametrize('path', PRESETS, ids=lambda p: f'{p.parent.name}/{p.stem}')
def test_preset_passes_the_config_checks(path):
    "Every JMP preset loads through the engine's config checks, builds (on the meta device) and has consistent lengths."
    from molkit.train.setup import load_config
    from molkit.train.model import build_model, param_blocks
    cfg = load_config(path)  # types, keys and cross-references (check_experiment); the data is not opened
    with torch.device('meta'): model = build_model(cfg.model)
    blocks = param_blocks(model, cfg.optim.layer_lr)  # one multiplier per block, or a one-line error
    assert cfg.optim.betas == [0.9, 0.95] and cfg.optim.weight_decay == 0.1 and not cfg.optim.exclude_no_decay
    if path.parent.name == 'pretrain':
        assert cfg.data.temperature == 2.0 and cfg.ema.decay == 0.99 and cfg.optim.clip_grad_norm == 1.0
        assert cfg.schedule.warmup_steps == 2000 and cfg.schedule.start_factor == 0.2 and cfg.model.backbone_cfg['edge_dropout'] == 0.1
        assert all(s.reduction == 'structurewise' for s in cfg.loss if s.fn == 'l2mae') and cfg.precision.mode in ('fp16', 'bf16')
        assert not blocks
        by = {d.name: d for d in cfg.data.datasets}  # JMP's graphs (8 Å molecules, 12 Å catalysts) and fixed stds
        assert (by['ani1x'].cutoff, by['t1x'].cutoff, by['oc20'].cutoff) == (8.0, 8.0, None)
        assert by['oc20'].norm == {'energy': [0.0, 24.9015], 'forces': [0.0, 0.51115]} and all(d.norm for d in by.values())
    else:
        assert cfg.init is None and cfg.optim.lr == 8e-5 and cfg.optim.clip_grad_value == 1.0 and cfg.optim.clip_grad_norm is None
        want = {'jmp_s': [0.3, 0.30, 0.40, 0.55, 0.625], 'jmp_l': [0.3, 0.55, 0.40, 0.30, 0.40, 0.55, 0.625]}[cfg.model.preset]
        assert cfg.optim.layer_lr == want and [b.scale for b in blocks] == want
        s, t = cfg.schedule, cfg.train
        assert (s.warmup_epochs, s.total_epochs, t.eval_every_epochs) == (5, 32, 1) and s.plateau and s.scale_min_factor
        heads = [h for h in cfg.model.heads.values() if h.type in ('energy', 'scalar')]  # JMP's 5-layer heads
        assert heads and all((h.num_layers, h.hidden_dim, h.out_bias, h.act) == (5, 256, False, 'scaled_silu') for h in heads)
        if path.stem.startswith(('qmof', 'matbench')): assert cfg.model.backbone_cfg['max_neighbors_by_size'] == {200: 10, 300: 5}
        assert t.early_stopping_patience in (50, 1000) and t.min_lr > 0 and cfg.seed == 42 and not cfg.model.backbone_cfg['direct_forces']

@pytest.mark.slow
def test_full_size_jmp_s_layout_loads_and_runs():
    "A JMP-S-sized checkpoint (38.9M backbone parameters) loads into the jmp_s preset, force branch dropped, and runs."
    from molkit.train.jmp import load_jmp_backbone
    torch.manual_seed(0)
    src = GemNetOC(GEMNET_OC_PRESETS['jmp_s'])
    for n, b in src.named_buffers():
        if n.endswith('scale_factor'): b.fill_(1.0)
    assert sum(p.numel() for p in src.parameters()) == 38_873_088  # 38.9M: the S count with the force branch
    ema = {k: 0.5 * v.detach() for k, v in src.named_parameters()}
    ck = jmp_lightning_checkpoint(src, ema)
    del src
    ft = GemNetOC(dataclasses.replace(GEMNET_OC_PRESETS['jmp_s'], direct_forces=False, cutoff=6.0))
    skipped = load_jmp_backbone(ft, ck)
    assert sum(k.startswith('backbone.out_mlp_F.') for k in skipped) == 5 and sum(k.startswith('output.') for k in skipped) == 72
    for k, v in ft.named_parameters(): assert torch.equal(v, ema[k]), k
    mol = toy_molecules(2, seed=1)
    with torch.no_grad(): out = ft.eval()(Batch.from_data_list(mol))
    assert out['node'].shape == (sum(len(m.z) for m in mol), 256) and torch.isfinite(out['node']).all()

def test_presets_run_pretrain_then_finetune(emt, toy, tmp_path):
    "JMP-S pre-training preset, then rMD17 JMP-S fine-tuning from its checkpoint: a few steps on tiny data and GemNet-OC."
    import warnings
    from molkit.train.loop import train
    root = Path(__file__).resolve().parents[1] / 'configs' / 'jmp'
    small = {'cutoff': 5.0, 'max_num_neighbors': 12, 'absolute_rbf_cutoff': 5.0}
    ds = [{'name': n, 'source': str(src), 'split': {'train': 0.75, 'val': 0.25}, 'linear_reference': ['energy'],
           'norm': {'energy': [0.0, 2.0], 'forces': [0.0, 0.5]}, **({'cutoff': 3.0} if src == toy else {})}
          for n, src in (('oc20', emt), ('oc22', emt), ('ani1x', toy), ('t1x', toy))]  # the preset's keys, sizes to fit
    pre = train(root / 'pretrain' / 'jmp_s.yaml', overrides=[
        f'data.datasets={ds}', 'data.batch_size=4', 'data.num_workers=0', 'model.preset=tiny',
        *[f'model.backbone_cfg.{k}={v}' for k, v in small.items()], 'precision.mode=fp32', 'train.max_epochs=null',
        'train.max_steps=3', 'train.eval_every=3', 'train.log_every=1', 'train.progress=false', 'train.device=cpu',
        'schedule.warmup_steps=2', f'run_dir={tmp_path / "pre"}'])
    rows = [yaml.safe_load(l) for l in (tmp_path / 'pre' / 'evals.jsonl').read_text().splitlines()]
    assert {'val_oc20/forces_mae', 'val_t1x/energy_mae'} <= set(rows[-1])
    with warnings.catch_warnings(record=True) as w:  # other graph options than pre-training: allowed, with a warning
        warnings.simplefilter('always')
        train(root / 'finetune' / 'rmd17_s.yaml', overrides=[
            f'data.dataset={toy}', 'data.split_file=null', 'data.split={train: 16, val: 8}', 'model.preset=tiny',
            *[f'model.backbone_cfg.{k}={v}' for k, v in small.items()], 'optim.layer_lr=[0.3, 0.55, 0.625]',
            f'init={{checkpoint: {pre.checkpoint}}}', 'train.max_epochs=null', 'train.max_steps=6', 'train.eval_every=2',
            'train.checkpoint_every_epochs=0', 'train.checkpoint_every=2', 'train.eval_every_epochs=0',
            'schedule.warmup_epochs=null', 'schedule.total_epochs=null', 'schedule.warmup_steps=2', 'schedule.total_steps=4', 'train.progress=false',
            'train.device=cpu', f'run_dir={tmp_path / "ft"}'])
    assert any('options other than the checkpoint' in str(x.message) for x in w)
    rows = [yaml.safe_load(l) for l in (tmp_path / 'ft' / 'evals.jsonl').read_text().splitlines()]
    assert len(rows) == 3 and 'val_forces_mae' in rows[-1]
    ck = load_checkpoint(tmp_path / 'ft' / 'best.pt')
    assert not any('seq_forces' in k or 'out_mlp_F' in k for k in ck['model'])  # force branch dropped

"DMoE (distribution) heads in the training engine: train, log CE/L1, checkpoint round trip, NLL in target units."
import json, math
import pytest
import torch
from molkit.train.inference import distribution_metrics, distribution_outputs, evaluate, load_trained, predict
from molkit.train.loop import train
from molkit.train.data import build_splits
from molkit.train.setup import load_config

TINY = {'hidden_dim': 16, 'num_filters': 16, 'num_interactions': 2, 'num_gaussians': 16, 'cutoff': 4.0}

def _cfg(run_dir, head: dict, loss: dict, steps: int = 300) -> dict:
    return {'data': {'dataset': 'qm9_subset', 'limit': 300, 'split': {'train': 250, 'val': 50}, 'batch_size': 16,
                     'linear_reference': ['U0']},
            'model': {'backbone': 'schnet', 'backbone_cfg': TINY, 'heads': {'U0': head}},
            'loss': [{'target': 'U0', **loss}], 'optim': {'lr': 3e-3}, 'schedule': {'warmup_steps': 10},
            'train': {'max_steps': steps, 'eval_every': 100, 'checkpoint_every': 100, 'eval_at_start': True, 'progress': False},
            'seed': 0, 'run_dir': str(run_dir)}

DIST = {'type': 'dist', 'bins': {'num_bins': 32}, 'target': {'kind': 'hl_gauss', 'sigma': 0.75},
        'head': {'hidden_dim': 16}}

def test_dmoe_head_trains_and_round_trips(tmp_path):
    res = train(_cfg(tmp_path / 'dmoe', DIST, {'fn': 'dmoe', 'l1_weight': 1.0}))
    maes = [e['val_U0_mae'] for e in res.evals]
    assert maes[-1] < 0.8 * maes[0], maes
    assert all(math.isfinite(e['val_U0_nll']) for e in res.evals)
    rows = [json.loads(l) for l in (tmp_path / 'dmoe' / 'steps.jsonl').read_text().splitlines()]
    assert {'U0/ce', 'U0/l1'} <= set(rows[-1]) and rows[-1]['U0/ce'] > 0
    # checkpoint: bins are buffers, so a model rebuilt from the checkpoint predicts exactly the same
    model, norms, cfg = load_trained(res.checkpoint)
    ck = torch.load(res.checkpoint, weights_only=True)
    assert torch.equal(ck['model']['heads.U0.edges'], model.heads['U0'].edges)
    val = build_splits(cfg.data)['val']
    p1, p2 = predict(res.checkpoint, split='val', progress=False), predict(res.checkpoint, split='val', progress=False)
    assert torch.equal(p1['U0'], p2['U0']) and p1['U0'].dtype == torch.float64
    m = evaluate(res.checkpoint, split='val', progress=False)
    assert m['U0_mae'] == pytest.approx(maes[-1], rel=1e-6) and math.isfinite(m['U0_nll'])
    # physical-unit histograms: MAE equals evaluate's, NLL equals the engine's
    d = distribution_outputs(model, val, norms, torch.device('cpu'), 'U0')
    dm = distribution_metrics(d)
    assert dm['mae'] == pytest.approx(m['U0_mae'], rel=1e-6) and dm['nll'] == pytest.approx(m['U0_nll'], rel=1e-5)
    assert d['probs'].shape == (50, 32) and torch.allclose(d['probs'].sum(-1), torch.ones(50, dtype=torch.float64))
    assert -1 <= dm['spearman'] <= 1 and 0 <= dm['coverage_gap'] <= 1

def test_experts_and_ce_only(tmp_path):
    res = train(_cfg(tmp_path / 'exp', {**DIST, 'experts': 2}, {'fn': 'ce'}, steps=30))
    m = evaluate(res.checkpoint, split='val', progress=False)
    assert math.isfinite(m['U0_mae']) and math.isfinite(m['U0_nll'])

def test_mismatched_loss_and_head_fail(tmp_path):
    with pytest.raises(ValueError, match="loss.0.fn: 'l1' does not suit head 'U0' of type 'dist'"):
        train(_cfg(tmp_path / 'a', DIST, {'fn': 'l1'}, steps=2))
    with pytest.raises(ValueError, match="loss.0.fn: 'dmoe' does not suit head 'U0' of type 'energy'"):
        train(_cfg(tmp_path / 'b', {'type': 'energy'}, {'fn': 'dmoe'}, steps=2))
    with pytest.raises(Exception, match="did you mean 'num_bins'"):
        train(_cfg(tmp_path / 'c', {**DIST, 'bins': {'num_bin': 8}}, {'fn': 'dmoe'}, steps=2))


def test_per_term_gradient_norms_are_logged(tmp_path):
    "With train.log_grad_norms_every, steps.jsonl carries ‖∂CE/∂θ‖ and ‖∂L1/∂θ‖ of the DMoE loss on those steps."
    cfg = _cfg(tmp_path / 'gn', DIST, {'fn': 'dmoe', 'l1_weight': 1.0}, steps=4)
    cfg['train'].update(log_every=1, log_grad_norms_every=2, eval_at_start=False)
    train(cfg)
    rows = [json.loads(l) for l in (tmp_path / 'gn' / 'steps.jsonl').read_text().splitlines()]
    logged = {r['step']: r for r in rows if 'gradnorm/U0/ce' in r}
    assert sorted(logged) == [2, 4], [r['step'] for r in rows]
    for r in logged.values():
        assert r['gradnorm/U0/ce'] > 0 and r['gradnorm/U0/l1'] > 0 and r['gradnorm/U0'] > 0

def test_control_and_mean_variance_heads_train(tmp_path):
    "The readout control (plain regression through the distribution head's readout) and the Gaussian mean–variance head."
    ctrl = train(_cfg(tmp_path / 'ctrl', {'type': 'readout_scalar', 'hidden_dim': 16}, {'fn': 'l1'}, steps=300))
    assert ctrl.evals[-1]['val_U0_mae'] < 0.8 * ctrl.evals[0]['val_U0_mae']
    mv = train(_cfg(tmp_path / 'mv', {'type': 'mean_var', 'hidden_dim': 16}, {'fn': 'gaussian_nll'}, steps=300))
    assert mv.evals[-1]['val_U0_mae'] < 0.8 * mv.evals[0]['val_U0_mae']
    assert mv.evals[-1]['val_U0_nll'] < mv.evals[0]['val_U0_nll']  # Gaussian NLL in target units, falls in training
    p = predict(mv.checkpoint, split='val', progress=False)
    assert p['U0'].shape == (50,)  # the mean, in eV
    with pytest.raises(ValueError, match="'l1' does not suit head 'U0' of type 'mean_var'"):
        train(_cfg(tmp_path / 'bad', {'type': 'mean_var'}, {'fn': 'l1'}, steps=2))

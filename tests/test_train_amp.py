"Precision in the training loop: non-finite steps skipped and counted (CPU), bf16/fp16 steps and the GradScaler (CUDA)."
import math
import pytest, torch
from torch import nn
from molkit.train.amp import NonFiniteError, Precision
from molkit.train.checkpoint import latest_checkpoint, load_checkpoint
from molkit.train.loop import train
from _train_helpers import toy_config, toy_molecules

def _no_norm(cfg: dict) -> dict:
    cfg['data'].update(normalize=False, linear_reference=[])
    return cfg

def test_nan_label_step_is_skipped(tmp_path):
    "A structure with a NaN label makes its step non-finite: skipped, counted, weights stay finite."
    mols = toy_molecules(24)
    mols[5].energy = torch.tensor([math.nan], dtype=torch.float64)
    cfg = _no_norm(toy_config(tmp_path / 'run', 'unused', max_steps=12, eval_every=0, checkpoint_every=0))
    cfg['data']['batch_size'] = 4
    res = train(cfg, datasets={'train': mols[:16], 'val': mols[16:]})
    assert res.skipped_steps == 3  # the NaN structure is in one batch per epoch; 12 steps = 3 epochs of 4
    ck = load_checkpoint(latest_checkpoint(tmp_path / 'run' / 'checkpoints'))
    assert ck['precision']['skipped'] == 3 and ck['step'] == 12
    assert all(torch.isfinite(v).all() for v in ck['model'].values())
    assert math.isfinite(res.evals[-1]['val_energy_mae'])

def test_abort_after_consecutive_skips(tmp_path):
    mols = toy_molecules(12)
    for m in mols[:8]: m.energy = torch.tensor([math.nan], dtype=torch.float64)
    cfg = _no_norm(toy_config(tmp_path / 'run', 'unused', max_steps=20, eval_every=0, checkpoint_every=0))
    cfg['precision'] = {'max_consecutive_skips': 3}
    with pytest.raises(NonFiniteError, match='3 consecutive steps'):  # stops at max_consecutive_skips in a row
        train(cfg, datasets={'train': mols[:8], 'val': mols[8:]})

@pytest.mark.cuda
@pytest.mark.parametrize('mode', ['bf16', 'fp16'])
def test_cuda_mixed_precision_train(tmp_path, mode):
    from molkit.data.lmdb import write_lmdb
    lmdb = str(write_lmdb(toy_molecules(64), tmp_path / 'toy', progress=False))
    cfg = toy_config(tmp_path / 'run', lmdb, max_steps=30)
    cfg['train']['device'], cfg['precision'] = 'cuda', {'mode': mode}
    res = train(cfg)
    assert res.step == 30 and math.isfinite(res.evals[-1]['val_energy_mae'])
    ck = load_checkpoint(latest_checkpoint(tmp_path / 'run' / 'checkpoints'))
    assert all(torch.isfinite(v).all() for v in ck['model'].values())
    assert bool(ck['precision']['scaler']) == (mode == 'fp16')  # GradScaler state only when enabled

@pytest.mark.cuda
def test_cuda_fp16_overflow_skips_and_backs_off():
    torch.manual_seed(0)
    m = nn.Linear(8, 1).cuda(); opt = torch.optim.AdamW(m.parameters(), lr=1e-2)
    prec = Precision('fp16', 'cuda', max_consecutive_skips=5)
    x = torch.randn(4, 8, device='cuda')
    w = m.weight.detach().clone(); scale0 = prec.scaler.get_scale()
    with prec.autocast(): out = m(x)
    assert out.dtype == torch.float16
    loss = out.float().square().mean() * float('inf')
    prec.backward(loss)
    ok, _ = prec.step(opt, m.parameters(), clip_norm=1.0, loss_finite=bool(torch.isfinite(loss)))
    assert not ok and prec.skipped == 1 and torch.equal(w, m.weight)
    assert prec.scaler.get_scale() < scale0  # backed off
    with prec.autocast(): loss = m(x).float().square().mean()
    prec.backward(loss)
    assert prec.step(opt, m.parameters(), clip_norm=1.0)[0] and not torch.equal(w, m.weight)

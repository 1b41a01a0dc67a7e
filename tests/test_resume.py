"Resuming a training run: interrupted (in-process and SIGKILLed subprocess) runs end where an uninterrupted run ends."
import os, signal, subprocess, sys, time
from pathlib import Path
import pytest, torch, yaml
from molkit.data.lmdb import write_lmdb
from molkit.train import loop
from molkit.train.checkpoint import latest_checkpoint, load_checkpoint
from molkit.train.loop import train
from _train_helpers import toy_config, toy_molecules

@pytest.fixture(scope='module')
def toy_lmdb(tmp_path_factory) -> str:
    return str(write_lmdb(toy_molecules(64), tmp_path_factory.mktemp('data') / 'toy', progress=False))

def _weights(run_dir: Path) -> dict:
    return load_checkpoint(latest_checkpoint(Path(run_dir) / 'checkpoints'))

def _same_state(a: dict, b: dict):
    assert a['step'] == b['step'] and a['epoch'] == b['epoch'] and a['batch_in_epoch'] == b['batch_in_epoch']
    for k in a['model']: assert torch.equal(a['model'][k], b['model'][k]), k
    for k in a['ema']['shadow']: assert torch.equal(a['ema']['shadow'][k], b['ema']['shadow'][k]), k

def test_resume_in_process_matches_uninterrupted(toy_lmdb, tmp_path, monkeypatch):
    ref = train(toy_config(tmp_path / 'ref', toy_lmdb, max_steps=30))
    assert ref.step == 30 and ref.epoch == 2  # 12 steps per epoch: resumes cross epoch boundaries
    orig = loop.Run.after_step
    def crash(self, out, total, evals):
        orig(self, out, total, evals)
        if self.step == 17: raise KeyboardInterrupt  # dies between checkpoints 10 and 20
    monkeypatch.setattr(loop.Run, 'after_step', crash)
    with pytest.raises(KeyboardInterrupt): train(toy_config(tmp_path / 'b', toy_lmdb, max_steps=30))
    monkeypatch.setattr(loop.Run, 'after_step', orig)
    assert latest_checkpoint(tmp_path / 'b' / 'checkpoints').name == 'step_00000010.pt'
    res = train(toy_config(tmp_path / 'b', toy_lmdb, max_steps=30), resume=True)
    assert res.step == 30
    _same_state(_weights(tmp_path / 'ref'), _weights(tmp_path / 'b'))
    steps = [yaml.safe_load(l)['step'] for l in (tmp_path / 'b' / 'steps.jsonl').read_text().splitlines()]
    assert steps == list(range(1, 31))  # logs of steps 11-17 from the dead run were dropped, none repeated

def test_refuses_to_overwrite(toy_lmdb, tmp_path):
    train(toy_config(tmp_path / 'r', toy_lmdb, max_steps=10))
    with pytest.raises(FileExistsError, match='already has checkpoints'): train(toy_config(tmp_path / 'r', toy_lmdb, max_steps=10))

_SCRIPT = "import sys; from molkit.train.loop import train; train(sys.argv[1], resume=True)"

def _run(cfg_path: Path, **kw):
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONPATH': str(Path(__file__).resolve().parents[1])}
    return subprocess.Popen([sys.executable, '-c', _SCRIPT, str(cfg_path)], env=env, **kw)

def test_sigkill_and_resume(toy_lmdb, tmp_path):
    "A subprocess is SIGKILLed after its first checkpoint; resuming ends with the uninterrupted run's weights."
    cfgs = {}
    for name in ('ref', 'killed'):
        cfgs[name] = tmp_path / f'{name}.yaml'
        cfgs[name].write_text(yaml.safe_dump(toy_config(tmp_path / name, toy_lmdb, max_steps=200, eval_every=50,
                                                        checkpoint_every=20, log_every=1)))
    assert _run(cfgs['ref']).wait(timeout=300) == 0
    p = _run(cfgs['killed'], stderr=subprocess.DEVNULL)
    ckpt_dir, t0 = tmp_path / 'killed' / 'checkpoints', time.time()
    while latest_checkpoint(ckpt_dir) is None and p.poll() is None and time.time() - t0 < 300: time.sleep(0.02)
    assert p.poll() is None, "the run finished before it could be killed"
    os.kill(p.pid, signal.SIGKILL); p.wait()
    killed_at = load_checkpoint(latest_checkpoint(ckpt_dir))['step']
    assert 0 < killed_at < 200
    assert _run(cfgs['killed']).wait(timeout=300) == 0
    _same_state(_weights(tmp_path / 'ref'), _weights(tmp_path / 'killed'))
    assert _weights(tmp_path / 'killed')['step'] == 200

"`train.compile`: `molkit train` compiles an energy model, and warns and trains eagerly where the step needs a double backward."
import json, os, subprocess, sys
from pathlib import Path
import pytest, yaml
from molkit.data.lmdb import write_lmdb
from _train_helpers import toy_config, toy_molecules


def _molkit_train(tmp_path: Path, cfg: dict, *sets: str) -> subprocess.CompletedProcess:
    (tmp_path / 'cfg.yaml').write_text(yaml.safe_dump(cfg))
    molkit = Path(sys.executable).parent / 'molkit'
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    args = [a for s in sets for a in ('--set', s)]
    return subprocess.run([str(molkit), 'train', str(tmp_path / 'cfg.yaml'), *args], env=env, capture_output=True, text=True, timeout=600)


def _losses(run_dir: Path) -> list[float]:
    return [json.loads(l)['loss'] for l in (run_dir / 'steps.jsonl').read_text().splitlines()]


def test_compile_falls_back_for_gradient_forces(tmp_path):
    "Gradient forces need a double backward: one warning naming the reason, then an eager run to the end."
    lmdb = str(write_lmdb(toy_molecules(64), tmp_path / 'toy', progress=False))
    cfg = toy_config(tmp_path / 'run', lmdb, max_steps=3)
    cfg['model']['heads']['forces'] = {'type': 'gradient_forces', 'energy': 'energy'}
    cfg['loss'].append({'target': 'forces', 'fn': 'l2mae'})
    r = _molkit_train(tmp_path, cfg, 'train.compile=true')
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'train.compile' in r.stderr and 'double backward' in r.stderr and 'training eagerly' in r.stderr
    assert len(_losses(tmp_path / 'run')) == 3


@pytest.mark.slow
def test_compile_energy_model_from_cli(tmp_path):
    "An energy-only SchNet trains compiled (no fallback warning), with finite losses and a checkpoint."
    lmdb = str(write_lmdb(toy_molecules(64), tmp_path / 'toy', progress=False))
    r = _molkit_train(tmp_path, toy_config(tmp_path / 'run', lmdb, max_steps=4), 'train.compile=true')
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'train.compile' not in r.stderr, r.stderr[-2000:]
    losses = _losses(tmp_path / 'run')
    assert len(losses) == 4 and all(l == l and abs(l) < 1e6 for l in losses)
    assert (tmp_path / 'run' / 'checkpoints').exists()

"`molkit demo` under a non-interactive stderr (a log file): plain progress lines, a report with the explorers' views; then `molkit eval` / `predict` on a run directory."
import os, subprocess, sys
from pathlib import Path

def _molkit(*args, cwd, timeout=600):
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    env.pop('TQDM_MININTERVAL', None)
    return subprocess.run([sys.executable, '-c', 'import sys; from molkit.cli import main; sys.exit(main())', *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)

def test_demo_log_and_run_dir(tmp_path):
    r = _molkit('demo', '--out', 'demo', '--steps', '40', '--n-train', '80', cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    log = r.stdout + r.stderr
    assert log.count('\r') == 0 and len(log.splitlines()) < 60, log[-3000:]  # no bar redraws in the log
    assert 'L1: step 40/40 (100 %)' in r.stdout and 'DMoE: step 40/40 (100 %)' in r.stdout
    html = (tmp_path / 'demo' / 'report.html').read_text()
    for h in ('Distribution explorer: the largest error', 'Risk–coverage'): assert f'<h2>{h}</h2>' in html, h
    run = tmp_path / 'demo' / 'runs' / 'L1'
    e = _molkit('eval', str(run), '--split', 'test', cwd=tmp_path)
    assert e.returncode == 0 and 'U0_mae' in e.stdout, e.stderr[-2000:]
    want = 'best' if (run / 'best.pt').exists() else 'latest'
    assert f'using the {want} checkpoint' in e.stderr, e.stderr
    p = _molkit('predict', str(run), '--split', 'test', '--out', 'p.npz', cwd=tmp_path)
    assert p.returncode == 0 and (tmp_path / 'p.npz').exists() and 'checkpoint' in p.stderr, p.stderr[-2000:]

def test_data_convert_overwrite(tmp_path):
    from ase.build import molecule
    from ase.calculators.emt import EMT
    from ase.calculators.singlepoint import SinglePointCalculator
    import ase.io
    frames = []
    for k in range(3):
        a = molecule('CH4'); a.rattle(0.05, seed=k); a.calc = EMT()
        a.calc = SinglePointCalculator(a, energy=a.get_potential_energy(), forces=a.get_forces()); frames.append(a)
    ase.io.write(tmp_path / 'm.extxyz', frames, format='extxyz')
    args = ('data', 'convert', 'ase', str(tmp_path / 'm.extxyz'), str(tmp_path / 'db'), '--quiet')
    assert _molkit(*args, cwd=tmp_path).returncode == 0
    again = _molkit(*args, cwd=tmp_path)
    assert again.returncode == 2 and 'exists' in again.stderr, again.stderr
    assert _molkit(*args, '--overwrite', cwd=tmp_path).returncode == 0

"`benchmarks/bench_all.py --quick`: one run writes the JSON record and replaces its block in a markdown file."
import json, os, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'benchmarks'))
from perf.report import BEGIN, END, write_block  # noqa: E402


def test_write_block_appends_then_replaces(tmp_path):
    md = tmp_path / 'R.md'
    md.write_text('# Results\n\n## Other section\nkeep me\n')
    write_block(md, f'{BEGIN}\nfirst\n{END}')
    write_block(md, f'{BEGIN}\nsecond\n{END}')
    text = md.read_text()
    assert text.count(BEGIN) == text.count(END) == 1 and 'second' in text and 'first' not in text and 'keep me' in text


def _bench(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONPATH': str(ROOT)}
    return subprocess.run([sys.executable, str(ROOT / 'benchmarks' / 'bench_all.py'), '--quick', '--cpu-only', *args],
                          env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)


def test_bench_all_quick(tmp_path):
    "Smoke run of the cheap sections in one process (compile and DDP are left out: they take minutes / spawn processes)."
    md, js = tmp_path / 'RESULTS.md', tmp_path / 'out' / 'bench.json'
    md.write_text(f'# Results\n\n## Earlier section\nkept\n\n{BEGIN}\nold block\n{END}\n\n## Later section\nkept too\n')
    r = _bench('--in-process', '--skip', 'compile', 'ddp', '--json', str(js), '--md', str(md))
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(js.read_text())
    assert {'command', 'date', 'environment', 'settings', 'budget', 'figures', 'targets'} <= set(res)
    assert {'host_cpu', 'torch', 'torch_geometric', 'vesin', 'cuda'} <= set(res['environment'])
    assert res['settings']['torch_threads'] == 1 and 'flush_denormal' in res['settings']
    f = res['figures']
    assert {'lmdb_decode', 'loader_wait', 'neighbour_lists', 'train_steps', 'atoms_sweep', 'schnet_vs_pyg', 'dmoe_overhead',
            'profiles'} <= set(f) and f['skipped'] == {'compile': '--skip', 'ddp': '--skip'}
    assert {r['model'] for r in f['train_steps']} == {'schnet', 'painn', 'gemnet_oc', 'graphormer3d'}
    assert all(r['structures_per_s'] > 0 for r in f['train_steps'])
    assert all(n['edges'] == n['edges_ase'] for n in f['neighbour_lists'])  # same pairs as the reference
    assert f['lmdb_decode']['decode_ratio'] > 0 and f['schnet_vs_pyg'][0]['energy_max_abs_diff_eV'] < 1e-4
    assert {t['status'] for t in res['targets']} <= {'met', 'not met', 'not measured', 'CPU: no target'}
    text = md.read_text()
    assert text.count(BEGIN) == text.count(END) == 1 and 'old block' not in text
    assert 'kept\n' in text and 'kept too' in text and '### Training step' in text and 'not measured (no GPU)' in text


def test_bench_all_fresh_processes(tmp_path):
    "Default mode: each section in its own process; the figures come back through the parent into one JSON and block."
    md, js = tmp_path / 'R.md', tmp_path / 'b.json'
    r = _bench('--sections', 'lmdb_decode', 'neighbour_lists', '--json', str(js), '--md', str(md))
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(js.read_text())
    assert res['in_process'] is False and set(res['figures']) == {'lmdb_decode', 'neighbour_lists', 'skipped'}
    assert res['figures']['lmdb_decode']['decode_ratio'] > 0 and 'Each section ran in a fresh process' in md.read_text()

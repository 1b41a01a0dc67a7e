"`molkit demo` and `molkit ablate` from the command line (tiny budgets)."
import json, os, subprocess, sys
from pathlib import Path
import yaml
from _train_helpers import run_molkit

TINY = {'hidden_dim': 8, 'num_filters': 8, 'num_interactions': 1, 'num_gaussians': 8, 'cutoff': 4.0}


def molkit(*args, cwd=None):
    "Run the installed console script; return the completed process."
    return run_molkit(*args, cwd=cwd)


def test_demo_writes_table_report_and_refuses_to_clobber(tmp_path):
    out = tmp_path / 'demo'
    p = molkit('demo', '--out', out, '--steps', '6', '--n-train', '64', '--quiet')
    assert p.returncode == 0, p.stderr[-3000:]
    assert 'L1' in p.stdout and 'DMoE' in p.stdout and 'MAE (meV)' in p.stdout
    res = json.loads((out / 'results.json').read_text())
    assert [r['model'] for r in res['table']] == ['L1', 'control', 'mean–var', 'DMoE']
    html = (out / 'report.html').read_text()
    assert 'plotly' in html and 'L1 vs DMoE' in html
    again = molkit('demo', '--out', out, '--steps', '6', '--n-train', '64', '--quiet')
    assert again.returncode == 2 and '--overwrite' in again.stderr and 'Traceback' not in again.stderr
    assert molkit('demo', '--out', out, '--steps', '6', '--n-train', '64', '--quiet', '--overwrite').returncode == 0


def test_ablate_writes_summary_tables(tmp_path):
    spec = {'base': {'data': {'dataset': 'qm9_subset', 'limit': 80, 'split': {'train': 50, 'val': 15, 'test': 15},
                              'batch_size': 16, 'linear_reference': ['U0']},
                     'model': {'backbone_cfg': TINY, 'heads': {'U0': {'type': 'dist', 'bins': {'num_bins': 16},
                                                                       'head': {'hidden_dim': 8}}}},
                     'loss': [{'target': 'U0', 'fn': 'dmoe'}], 'train': {'max_steps': 3, 'eval_every': 0}},
            'grid': {'loss.0.fn': ['ce', 'dmoe']}, 'seeds': [0, 1], 'out_dir': 'abl'}
    (tmp_path / 'abl.yaml').write_text(yaml.safe_dump(spec))
    p = molkit('ablate', 'abl.yaml', '--quiet', cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    md = (tmp_path / 'abl' / 'summary.md').read_text()
    assert 'fn=ce' in md and 'fn=dmoe' in md and '±' in md
    bad = {**spec, 'seedz': [0]}
    (tmp_path / 'bad.yaml').write_text(yaml.safe_dump(bad))
    q = molkit('ablate', 'bad.yaml', cwd=tmp_path)
    assert q.returncode == 2 and 'seedz' in q.stderr and 'Traceback' not in q.stderr

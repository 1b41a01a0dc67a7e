"""The verdict of the DMoE study (issue 11): per task, the test MAE of each study's finalist (mean ± std over seeds),
DMoE against the better L1 regression (the scalar head or the readout control), and the validation MAE of each
finalist at every rung of the search (its learning curve as the search saw it). Where a second DMoE search exists
(`study_TASK_dmoe_round2`), the DMoE finalist is whichever of the two has the lower validation MAE at the full budget:
selection never looks at the test split.

    python benchmarks/dmoe_verdict.py --tasks qm9:U0 emt:ads_energy md:energy --runs runs > benchmarks/ablation/study/verdict.md
"""
import argparse, csv
from pathlib import Path

KINDS = {'l1': 'scalar head, L1', 'control': 'readout control, L1', 'meanvar': 'mean–variance, Gaussian NLL', 'dmoe': 'DMoE',
         'dmoe_round2': 'DMoE, round 2'}

def finalist(study: Path) -> dict:
    "The summary row that ran with the most seeds (the survivor of the search)."
    return max(csv.DictReader((study / 'summary.csv').open()), key=lambda r: int(r['seeds']))

def rungs(study: Path, cell: str, metric: str) -> list[tuple[int, float]]:
    "(steps, validation metric) of `cell` at each rung it reached."
    return [(int(r['steps']), float(r[metric])) for r in csv.DictReader((study / 'search.csv').open()) if r['cell'] == cell]

def task_section(task: str, target: str, runs: Path) -> tuple[str, str]:  # markdown, verdict word
    "Table of one task and whether DMoE beats the better L1 regression by more than one std."
    rows, stats, val = [], {}, {}
    for kind, title in KINDS.items():
        study = runs / f'study_{task}_{kind}'
        if not (study / 'summary.csv').exists(): continue
        f = finalist(study)
        m, s = 1000 * float(f[f'{target}_mae']), 1000 * float(f[f'{target}_mae_std'])
        stats[kind] = (m, s)
        curve = rungs(study, f['cell'], f'{target}_mae')
        val[kind] = curve[-1][1]
        rows.append(f"| {title} | `{f['cell']}` | {f['seeds']} | {m:.1f} ± {s:.1f} | "
                    + ', '.join(f'{n}: {1000 * v:.0f}' for n, v in curve) + ' |')
    pick = ''
    if 'dmoe_round2' in stats and 'dmoe' in stats:  # the DMoE finalist: lower validation MAE at the full budget
        if val['dmoe_round2'] < val['dmoe']: stats['dmoe'] = stats['dmoe_round2']
        r = 'round 2' if val['dmoe_round2'] < val['dmoe'] else 'round 1'
        pick = f"DMoE finalist: {r} (validation {1000 * min(val['dmoe'], val['dmoe_round2']):.0f} against {1000 * max(val['dmoe'], val['dmoe_round2']):.0f} meV). "
    head = [f'### {task} ({target})', '', '| head | finalist (chosen on validation) | seeds | test MAE (meV) | validation MAE (meV) by steps |',
            '|---|---|---|---|---|']
    if 'dmoe' not in stats or not ({'l1', 'control'} & set(stats)): return '\n'.join(head + rows) + '\n', 'incomplete'
    best = min((k for k in ('l1', 'control') if k in stats), key=lambda k: stats[k][0])
    (d, ds), (b, bs) = stats['dmoe'], stats[best]
    std = max(ds, bs)
    word = 'wins' if d < b - std else ('loses' if d > b + std else 'ties')
    note = (pick + f"DMoE {d:.1f} ± {ds:.1f} against the better L1 regression ({KINDS[best]}) {b:.1f} ± {bs:.1f}: "
            f"difference {d - b:+.1f} meV = {(d - b) / std if std else float('nan'):+.1f} std → **{word}**.")
    return '\n'.join(head + rows + ['', note]) + '\n', word

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--tasks', nargs='+', default=['qm9:U0', 'emt:ads_energy', 'md:energy'], help='TASK:TARGET')
    ap.add_argument('--runs', type=Path, default=Path('runs'))
    a = ap.parse_args()
    words = []
    for t in a.tasks:
        task, target = t.split(':')
        md, w = task_section(task, target, a.runs)
        print(md); words.append((task, w))
    wins = sum(w == 'wins' for _, w in words)
    print(f"**Verdict:** DMoE beats the better L1 regression by more than one std on {wins} of {len(words)} tasks "
          f"({', '.join(f'{t}: {w}' for t, w in words)}).")

if __name__ == '__main__':
    main()

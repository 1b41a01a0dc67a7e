"""What the distribution buys, on the finalists of the DMoE study (issue 11): calibration after scaling fitted on
validation, and risk–coverage against a random order and against the mean–variance head.

For each study directory written by `molkit ablate` with a `search:` (its summary.csv names the surviving cell), every
seed's last checkpoint is evaluated on the test split. Distribution heads get temperature scaling, mean–variance heads
σ scaling (`molkit.train.inference.fit_distribution_temperature` / `fit_gaussian_scale`), both fitted on validation.
Risk at coverage c = MAE of the most certain fraction c of the test structures (entropy or variance as the score);
a random order has risk = MAE at every c, so risk/MAE < 1 means the score ranks the errors.

    OMP_NUM_THREADS=1 python benchmarks/dmoe_uncertainty.py runs/study_qm9_dmoe runs/study_qm9_meanvar --out benchmarks/ablation/study/qm9_uncertainty.md
"""
import argparse, csv, json, statistics
from pathlib import Path
import torch
from molkit.targets.uncertainty import entropy, risk_coverage
from molkit.train.checkpoint import latest_checkpoint
from molkit.train.data import build_splits
from molkit.train.inference import (distribution_metrics, distribution_outputs, fit_distribution_temperature, fit_gaussian_scale,
                                    gaussian_metrics, gaussian_outputs, load_trained, task_labels)
from molkit.train.losses import is_distribution_head

COVERAGES = (0.1, 0.5, 0.9)

def finalist(study: Path) -> str:
    "The cell of the study's summary that ran with the most seeds (the survivor of the search)."
    rows = list(csv.DictReader((study / 'summary.csv').open()))
    return max(rows, key=lambda r: int(r['seeds']))['cell']

def score_and_error(kind: str, d: dict, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    "Uncertainty score and absolute error per structure."
    if kind == 'gaussian': return d['var'] * scale ** 2, (d['mean'] - d['target']).abs()
    return entropy(torch.log_softmax(d['probs'].clamp_min(1e-30).log() / scale, -1)), (d['pred'] - d['target']).abs()

def evaluate_seed(run: Path, device: torch.device) -> dict:
    "Raw and calibrated uncertainty metrics, and risk at a few coverages, of one trained run on its test split."
    model, norms, cfg = load_trained(latest_checkpoint(run / 'checkpoints'), device)
    splits = build_splits(cfg.data, task_labels(cfg.model))
    name, head = next((k, h) for k, h in model.heads.items() if callable(getattr(h, 'variance', None)) or is_distribution_head(h))
    if callable(getattr(head, 'variance', None)):
        kind, out, metrics, fit = 'gaussian', gaussian_outputs, gaussian_metrics, fit_gaussian_scale
    elif is_distribution_head(head): kind, out, metrics, fit = 'dist', distribution_outputs, distribution_metrics, fit_distribution_temperature
    else: raise ValueError(f"{run}: head {name!r} predicts no uncertainty")
    test, val = (out(model, splits[s], norms, device, name) for s in ('test', 'val'))
    c = fit(val)
    raw, cal = metrics(test), metrics(test, c)
    cov, risk = risk_coverage(*score_and_error(kind, test, 1.0))  # the uncalibrated score, as in AURC
    at = {f'risk@{x:.0%}': risk[int(round(x * len(risk))) - 1].item() / raw['mae'] for x in COVERAGES}
    return {'kind': kind, 'mae': raw['mae'], 'nll': raw['nll'], 'nll_cal': cal['nll'], 'coverage_gap': raw['coverage_gap'],
            'coverage_gap_cal': cal['coverage_gap'], 'calibration': c, 'spearman': raw['spearman'],
            'aurc/mae': raw['aurc'] / raw['mae'], **at}

def fmt(xs: list[float], scale: float = 1.0) -> str:
    "mean ± sample std."
    m = statistics.mean(xs) * scale
    return f"{m:.3g} ± {statistics.stdev(xs) * scale:.2g}" if len(xs) > 1 else f"{m:.3g}"

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('studies', nargs='+', type=Path)
    ap.add_argument('--out', type=Path, default=None, help='markdown file for the table (also printed); JSON beside it')
    a = ap.parse_args()
    dev, rows, raw = torch.device('cpu'), [], {}
    cols = ['mae', 'nll', 'nll_cal', 'calibration', 'coverage_gap', 'coverage_gap_cal', 'spearman', 'aurc/mae'] + [f'risk@{x:.0%}' for x in COVERAGES]
    for study in a.studies:
        cell = finalist(study)
        seeds = sorted((study / 'runs').glob(f"{cell.replace('/', '_')}/seed*"))
        res = [evaluate_seed(s, dev) for s in seeds]
        raw[str(study)] = {'cell': cell, 'seeds': [s.name for s in seeds], 'results': res}
        rows.append(f"| {study.name} ({res[0]['kind']}): {cell} | {len(res)} | " +
                    ' | '.join(fmt([r[k] for r in res], 1000 if k == 'mae' else 1) for k in cols) + ' |')
    head = ['study: finalist', 'seeds', 'MAE (meV)', 'NLL', 'NLL, calibrated', 'T or s', 'coverage gap', 'coverage gap, calibrated',
            'Spearman', 'AURC / MAE'] + [f'risk@{x:.0%} / MAE' for x in COVERAGES]
    md = '\n'.join(['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)] + rows)
    print(md)
    if a.out:
        a.out.write_text(md + '\n')
        a.out.with_suffix('.json').write_text(json.dumps(raw, indent=1))

if __name__ == '__main__':
    main()

"""The small-scale JMP reproduction (issue 14) end to end from the command line: pre-train SchNet on three domains with
T = 2 and structure-wise force loss, plus the ablations T = 1, T = ∞ and atom-wise force loss; fine-tune each on the
three held-out tasks, and train the same tasks from scratch at the same fine-tuning budget. Every run is a `molkit
train` / `molkit finetune` call in a fresh process; finished runs are skipped, so the script resumes.

    OMP_NUM_THREADS=1 python benchmarks/jmp_small/make_data.py /tmp/jmp_small
    OMP_NUM_THREADS=1 python benchmarks/jmp_small/run.py --out runs/jmp_small
    OMP_NUM_THREADS=1 python benchmarks/jmp_small/run.py --backbone gemnet_oc --out runs/jmp_small_gemnet --pretrains T2 \
        --seeds 0 --pretrain-steps 1500 --ft-steps 400 --set data.batch_size=8

`--backbone gemnet_oc` swaps SchNet for a small GemNet-OC (`GEMNET` below) in every run, pre-training and fine-tuning.

Writes OUT/results.json and OUT/results.md (test metrics at each run's best validation checkpoint).
"""
import argparse, json, math, os, shutil, statistics, subprocess, sys, time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = '/tmp/jmp_small'  # where the configs of this folder read the data (make_data.py's OUT)
EXE = Path(sys.executable).parent / 'molkit'
PRETRAIN = {  # name -> overrides of pretrain.yaml
    'T2': [],
    'T1': ['data.temperature=1'],
    'Tinf': ['data.temperature=.inf'],
    'T2_atomwise': ['loss.1.reduction=atomwise', 'loss.4.reduction=atomwise'],
}  # T2 first: its fine-tunes are the main comparison
TASKS = {'au': ['energy_mae', 'forces_mae'], 'gap': ['gap_mae'], 'ethanol': ['energy_mae', 'forces_mae']}
GEMNET = ['model.backbone=gemnet_oc', 'model.preset=tiny',  # the tiny preset (quadruplets included), 32 wide, 20 neighbours
          'model.backbone_cfg={hidden_dim: 32, emb_size_edge: 32, max_num_neighbors: 20, fit_scales: true}']
BACKBONES = {'schnet': [], 'gemnet_oc': GEMNET}  # overrides of every config
PRIMARY = {'au': 'forces_mae', 'gap': 'gap_mae', 'ethanol': 'forces_mae'}

def molkit(*args: str, log: Path) -> None:
    "Run `molkit ARGS` in a fresh process; its output goes to `log`."
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open('w') as f:
        p = subprocess.run([str(EXE), *args], stdout=f, stderr=subprocess.STDOUT, env={**os.environ, 'OMP_NUM_THREADS': '1'})
    if p.returncode: raise SystemExit(f"molkit {' '.join(args)} failed (exit {p.returncode}); see {log}")

def done(run: Path, steps: int) -> bool:
    "Whether the run reached `steps` (its steps.jsonl says so) and has a best checkpoint."
    f = run / 'steps.jsonl'
    if not (run / 'best.pt').exists() or not f.exists(): return False
    last = f.read_text().strip().splitlines()[-1:]
    return bool(last) and json.loads(last[0])['step'] >= steps

def test_metrics(run: Path) -> dict[str, float]:
    "`molkit eval RUN/best.pt --split test --out RUN/test.json`."
    out = run / 'test.json'
    if not out.exists(): molkit('eval', str(run / 'best.pt'), '--split', 'test', '--out', str(out), log=run / 'eval.log')
    return json.loads(out.read_text())

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--out', type=Path, default=Path('runs/jmp_small'))
    ap.add_argument('--pretrain-steps', type=int, default=2000); ap.add_argument('--ft-steps', type=int, default=500)
    ap.add_argument('--seeds', type=int, nargs='+', default=[0, 1], help='fine-tuning seeds of T2 and scratch (ablations: the first)')
    ap.add_argument('--pretrains', nargs='+', default=list(PRETRAIN), choices=list(PRETRAIN))
    ap.add_argument('--backbone', default='schnet', choices=list(BACKBONES))
    ap.add_argument('--data', type=Path, default=None, help=f'make_data.py output to use instead of {DATA}')
    ap.add_argument('--ft-set', dest='ft_extra', action='append', default=[],
                    help='an override of the fine-tuning runs only (not scratch), e.g. "optim.layer_lr=[0.3, 0.4, 0.55, 0.625]"')
    ap.add_argument('--set', dest='extra', action='append', default=[], help='a further override of every run, e.g. data.batch_size=8')
    a = ap.parse_args()
    t0, rows = time.time(), []
    starts = [('scratch', None)] + [(n, a.out / f'pretrain_{n}' / 'best.pt') for n in a.pretrains]
    if 'T2' in a.pretrains: pretrain('T2', a)  # the main comparison first: T2 and scratch, then each ablation
    for start, ckpt in starts:
        if ckpt is not None: pretrain(start, a)
        for task in TASKS:
            for seed in (a.seeds if start in ('scratch', 'T2') else a.seeds[:1]):
                rows.append({'task': task, 'start': start, 'seed': seed, **finetune(task, start, ckpt, seed, a)})
                print(rows[-1], f'({time.time() - t0:.0f} s)', flush=True)
        write(rows, a, [s for s, _ in starts])
    print(table(rows, [s for s, _ in starts]))

def config(name: str, a) -> Path:
    "The config `name`.yaml of this folder; with `--data`, a copy in OUT/configs that reads the data from there."
    src = HERE / f'{name}.yaml'
    if a.data is None: return src
    dst = a.out / 'configs' / src.name
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(src.read_text().replace(DATA, str(a.data.resolve())))
    return dst

def pretrain(name: str, a) -> None:
    "Pre-train one variant (resuming an interrupted run)."
    run = a.out / f'pretrain_{name}'
    if done(run, a.pretrain_steps): return
    sets = [f'run_dir={run}', f'train.max_steps={a.pretrain_steps}', 'train.progress=false', *BACKBONES[a.backbone], *a.extra, *PRETRAIN[name]]
    resume = ['--resume'] if (run / 'checkpoints').exists() else []
    molkit('train', str(config('pretrain', a)), *resume, *[x for s in sets for x in ('--set', s)], log=run.with_suffix('.log'))

def finetune(task: str, start: str, ckpt: Path | None, seed: int, a) -> dict[str, float]:
    "Fine-tune from `ckpt` (None: train from scratch) on one task; its test metrics."
    run = a.out / f'{start}_{task}_s{seed}'
    sets = [f'run_dir={run}', f'train.max_steps={a.ft_steps}', 'train.progress=false', f'seed={seed}', *BACKBONES[a.backbone], *a.extra,
            *(a.ft_extra if ckpt is not None else [])]
    if not done(run, a.ft_steps):
        if run.exists(): shutil.rmtree(run)  # an interrupted fine-tune starts again
        cfg = str(config(f'ft_{task}', a))
        cmd = ['train', cfg] if ckpt is None else ['finetune', str(ckpt), cfg]
        molkit(*cmd, *[x for s in sets for x in ('--set', s)], log=run.with_suffix('.log'))
    m = test_metrics(run)
    return {k: m[k] for k in TASKS[task]}

def write(rows: list[dict], a, starts: list[str]) -> None:
    "results.json and results.md so far."
    (a.out / 'results.json').write_text(json.dumps({'args': {k: str(v) for k, v in vars(a).items()}, 'rows': rows}, indent=1))
    (a.out / 'results.md').write_text(table(rows, [s for s in starts if any(r['start'] == s for r in rows)]))

def table(rows: list[dict], starts: list[str]) -> str:
    "Test error per task and start (mean ± std over seeds), and the error relative to scratch on each primary metric."
    def stat(task, start, k):
        xs = [r[k] * 1000 for r in rows if r['task'] == task and r['start'] == start]
        return (statistics.mean(xs), statistics.stdev(xs) if len(xs) > 1 else math.nan, len(xs)) if xs else None
    cols = [(t, k) for t, ks in TASKS.items() for k in ks]
    out = ['| start | ' + ' | '.join(f'{t} {k} (meV{"/Å" if "forces" in k else ""})' for t, k in cols) + ' | mean change of primary vs scratch |',
           '|' + '---|' * (len(cols) + 2)]
    for s in starts:
        cells = []
        for t, k in cols:
            st = stat(t, s, k)
            cells.append('—' if st is None else (f'{st[0]:.1f} ± {st[1]:.1f}' if st[2] > 1 else f'{st[0]:.1f}'))
        ch = [stat(t, s, PRIMARY[t])[0] / stat(t, 'scratch', PRIMARY[t])[0] - 1 for t in TASKS
              if stat(t, s, PRIMARY[t]) and stat(t, 'scratch', PRIMARY[t])]
        out.append(f'| {s} | ' + ' | '.join(cells) + f" | {100 * statistics.mean(ch):+.1f} % |" if ch else '')
    return '\n'.join(out) + '\n'

if __name__ == '__main__':
    main()

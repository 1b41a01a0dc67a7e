"Issue 10: every bad input of the corpus in tests/bad_inputs.py gives its exit status and one line naming the file, record or key, no traceback, and leaves the files alone."
import os, pickle, re, subprocess, sys, warnings
from pathlib import Path
import pytest
sys.path.insert(0, str(Path(__file__).parent))
import bad_inputs as bi

_PROGRESS = re.compile(r'\[\d\d:\d\d.*(/s|s/\w+)\]$')  # a tqdm progress bar line


@pytest.fixture(scope='module')
def corpus(tmp_path_factory):
    "Build every case and run it once (one Python process, one forked child per case)."
    root = tmp_path_factory.mktemp('bad_inputs')
    cases = {c.name: c for c in bi.build(root)}
    return root, cases, bi.run_cases(list(cases.values()), root)


@pytest.mark.parametrize('name', list(bi.CASES))
def test_bad_input(corpus, name):
    root, cases, results = corpus
    c, r = cases[name], results[name]
    msg = r['stdout'] if c.rc == 0 else r['stderr']
    assert r['rc'] == c.rc, f"exit status {r['rc']}, expected {c.rc}:\n{r['stderr'][-2000:]}"
    text = [l for l in r['stderr'].replace('\r', '\n').splitlines() if l.strip() and not _PROGRESS.search(l)]
    lines = [l for l in text if l.startswith('molkit: error:')]
    if c.rc == 2: assert len(lines) == 1 and text == lines, r['stderr']  # exactly one line (besides progress bars)
    if c.rc == 1: assert len(lines) >= 1 and text == lines, r['stderr']  # one line per bad record, then a summary
    for s in c.says: assert s in msg, f"{s!r} not in {msg!r}"
    for s in c.never_says: assert s not in r['stderr'] + r['stdout'], f"{s!r} in output: {r['stderr'][-2000:]}"
    assert bi.MARKER not in r['after'], 'a malicious payload ran'
    unexpected = {p for p in bi.changed(r['before'], r['after']) if not any(p == a or p.startswith(a + '/') for a in c.changes)}
    assert not unexpected, f"changed on disk: {sorted(unexpected)}"


def test_stale_partial_writes_removed_only_when_dead(corpus):
    root, _, results = corpus
    after = results['convert_removes_stale_partial_write']['after']
    assert '.out.incomplete-1-0123abcd' in after and '.out.incomplete-999999999-0123abcd' not in after and 'out' in after


def test_console_script_truncated_shard(corpus):
    "The installed `molkit` script itself (not a fork of the runner) on a truncated shard: a message, not SIGBUS."
    root, cases, _ = corpus
    ds = Path(cases['shard_truncated_info'].argv[1])
    exe = Path(sys.executable).parent / 'molkit'
    p = subprocess.run([str(exe), 'info', str(ds)], capture_output=True, text=True, timeout=300,
                       env={**os.environ, 'OMP_NUM_THREADS': '1'})
    assert p.returncode == 2 and 'data.0001.lmdb: truncated' in p.stderr and 'Traceback' not in p.stderr, p.stderr


def test_dataset_replaced_during_run(tmp_path):
    "A DataLoader worker gets the dataset pickled; if the files were replaced since it was opened, it fails instead of mixing."
    from molkit.data.lmdb import LMDBDataset, LMDBError, write_lmdb
    p = bi._dataset(tmp_path)
    ds = LMDBDataset(p)
    ds[0]  # the main process has shard 0 open
    write_lmdb(bi._atoms(6, seed=1), p, shard_size=3, progress=False, overwrite=True)
    worker = pickle.loads(pickle.dumps(ds))  # what a DataLoader worker starts from
    with pytest.raises(LMDBError, match='data.0001.lmdb: the file changed on disk after'): worker[4]
    with pytest.raises(LMDBError, match='data.0000.lmdb: the file changed on disk after'): worker[0]
    assert len(LMDBDataset(p)) == 6  # a fresh open reads the new dataset


def test_resume_falls_back_to_previous_good_checkpoint(tmp_path):
    from molkit.train.checkpoint import CheckpointError, checkpoint_path, load_latest_checkpoint, save_checkpoint
    for s in (10, 20): save_checkpoint({'step': s}, checkpoint_path(tmp_path, s))
    checkpoint_path(tmp_path, 30).write_bytes(b'')  # the newest is empty: a kill during a write on a full disk
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        f, state = load_latest_checkpoint(tmp_path)
    assert state['step'] == 20 and 'step_00000030.pt' in str(w[-1].message) and 'empty file' in str(w[-1].message)
    for s in (10, 20): checkpoint_path(tmp_path, s).write_bytes(b'PK junk')
    with pytest.raises(CheckpointError, match=r'no readable checkpoint.*step_00000030.*step_00000020.*step_00000010'):
        load_latest_checkpoint(tmp_path)


def test_legacy_dataset_given_to_eval(tmp_path):
    "`molkit eval` opens its DATASET with `load_dataset`: a legacy LMDB is named as such, not as an interrupted write."
    from molkit.data.lmdb import LMDBError
    from molkit.train.data import load_dataset
    p = bi._legacy(tmp_path)
    with pytest.raises(LMDBError, match='legacy OCP/fairchem LMDB') as e: load_dataset(str(p))
    assert 'interrupted' not in str(e.value)

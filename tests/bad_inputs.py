"""A corpus of bad inputs for the `molkit` command line, one case per defect class of issue 10, and a runner.

Each case builds its inputs in a directory of its own and says what `molkit ARGS` must do with them: the exit status,
substrings of the one-line message, and which paths under its directory may change. `run_cases` runs every case
as its own process: one Python process imports molkit once, then forks a child per case that runs
`molkit.cli.main(ARGS)` exactly as the console script does (an exception that escapes prints its traceback and
exits 1; a signal such as SIGBUS kills only that child and shows as a negative status). The parent snapshots the
case directory (path -> size, SHA-1) before and after.

    python tests/bad_inputs.py DIR          # build the corpus under DIR, run it, print one line per case
"""
from __future__ import annotations
import hashlib, json, os, pickle, shutil, struct, subprocess, sys, zipfile
from dataclasses import dataclass, field, asdict
from pathlib import Path

MARKER = 'PWNED'  # every malicious payload tries to create this file in its case directory


class Evil:
    "Unpickling this runs `touch <marker>`: a file that exists afterwards proves code ran."
    def __init__(self, marker: str): self.marker = marker
    def __reduce__(self): return (os.system, (f"touch '{self.marker}'",))


@dataclass
class Case:
    name: str
    argv: list  # molkit arguments
    rc: int  # expected exit status
    says: list  # substrings of the message (stderr, or stdout when rc == 0)
    changes: list = field(default_factory=list)  # relative paths (prefixes) that may be created, changed or removed
    never_says: list = field(default_factory=lambda: ['Traceback', 'weights_only=False'])


CASES: dict = {}

def case(fn):
    "Register a case builder: `fn(d: Path) -> Case` builds its inputs under `d`."
    CASES[fn.__name__] = fn
    return fn


# ------------------------------------------------------------------ inputs

def _atoms(n_frames: int = 6, seed: int = 0) -> list:
    "Small labelled Cu/O structures (energy, forces) with ASE's SinglePointCalculator."
    import numpy as np
    from molkit.data.readers.base import labelled_atoms
    rng, out = np.random.default_rng(seed), []
    for i in range(n_frames):
        z = np.array([29, 29, 8, 29][:3 + i % 2])
        pos = rng.uniform(0, 4, (len(z), 3))
        out.append(labelled_atoms(z, pos, energy=-1.5 * len(z) + 0.01 * i, forces=rng.normal(size=(len(z), 3)),
                                  cell=np.eye(3) * 8, pbc=True))
    return out

def _dataset(d: Path, name: str = 'ds', n: int = 6, shard_size: int = 3, schema1: bool = False, edit=None) -> Path:
    "A molkit dataset; `schema1`: rewritten as an earlier molkit wrote it (no CRC-32), records edited by `edit(i, data)`."
    from molkit.data.lmdb import write_lmdb
    p = write_lmdb(_atoms(n), d / name, shard_size=shard_size, progress=False)
    if schema1: _as_schema1(p, edit)
    return p

def _as_schema1(p: Path, edit=None) -> None:
    "Rewrite a dataset in schema 1: records without the CRC-32 trailer (optionally edited), metadata version 1."
    import lmdb
    from molkit.data.lmdb import META_KEY, decode_record, encode_record, SHARD_NAME
    from safetensors.torch import save as st_save
    start = 0
    for f in sorted(p.glob('data.*.lmdb')):
        env = lmdb.open(str(f), subdir=False, lock=False, map_size=1 << 30)
        with env.begin(write=True) as txn:
            keys = [k for k, _ in txn.cursor() if not k.startswith(b'__')]
            for k in keys:
                i = start + int(k)
                data = decode_record(txn.get(k))
                if edit is not None:
                    edit(i, data)
                    buf = st_save({k2: v for k2, v in data.to_dict().items() if hasattr(v, 'dtype')})
                else: buf = encode_record(data, checksum=False)
                txn.put(k, buf)
            if f.name == SHARD_NAME.format(0):
                meta = json.loads(txn.get(META_KEY)); meta['schema_version'] = 1; meta.pop('checksum', None)
                txn.put(META_KEY, json.dumps(meta).encode())
        env.sync(); env.close(); start += len(keys)

def _legacy(d: Path, name: str = 'legacy', n: int = 4, evil_at: int | None = None, ghost_at: int | None = None) -> Path:
    "A fairchem-v1 LMDB (pickled PyG Data, 1 shard); record `evil_at` is a pickle that runs code, `ghost_at` has z = 0."
    import lmdb, torch
    from torch_geometric.data import Data
    from molkit.data.legacy import write_legacy_lmdb
    recs = []
    for s in range(n):
        g = torch.Generator().manual_seed(s)
        z = torch.tensor([29., 29., 8.]) if s != ghost_at else torch.tensor([29., 0., 8.])
        recs.append(Data(pos=torch.rand(3, 3, generator=g) * 4, atomic_numbers=z, cell=torch.eye(3)[None] * 8, natoms=3,
                         y=-4.5 + s, force=torch.randn(3, 3, generator=g), sid=torch.LongTensor([s])))
    p = write_legacy_lmdb(recs, d / name, n_shards=1)
    if evil_at is not None:
        env = lmdb.open(str(p / 'data.0000.lmdb'), subdir=False, map_size=1 << 30)
        with env.begin(write=True) as txn: txn.put(str(evil_at).encode(), pickle.dumps(Evil(str(d / MARKER)), protocol=2))
        env.sync(); env.close()
    return p

def _extxyz(d: Path, frames=None, name: str = 'src.extxyz') -> Path:
    import ase.io
    ase.io.write(d / name, frames if frames is not None else _atoms(4))
    return d / name

def _config(d: Path, **backbone_cfg) -> Path:
    "A training config on a tiny dataset in `d`, with `backbone_cfg` overrides."
    import yaml
    ds = _dataset(d, n=8, shard_size=8)
    cfg = {'data': {'dataset': str(ds), 'split': {'train': 6, 'val': 2}, 'batch_size': 2},
           'model': {'backbone': 'schnet', 'backbone_cfg': {'hidden_dim': 8, 'num_filters': 8, 'num_interactions': 1,
                                                            'num_gaussians': 8, 'cutoff': 3.0, **backbone_cfg},
                     'heads': {'energy': {'type': 'energy'}}},
           'loss': [{'target': 'energy', 'fn': 'l1'}], 'train': {'max_steps': 2, 'progress': False, 'device': 'cpu'},
           'run_dir': str(d / 'run')}
    (d / 'exp.yaml').write_text(yaml.safe_dump(cfg))
    return d / 'exp.yaml'


# ------------------------------------------------------------------ pickles and checkpoints

@case
def legacy_malicious_pickle_info(d):
    p = _legacy(d, evil_at=1)
    return Case('', ['info', p], 2, [str(p), 'refusing to open without trusted=True'])

@case
def legacy_malicious_pickle_convert(d):
    p = _legacy(d, evil_at=1)
    return Case('', ['convert', p, d / 'out'], 2, [str(p), 'refusing to open without trusted=True'])

def _good_checkpoint(d: Path) -> Path:
    import torch
    torch.save({'step': 1, 'model': {'w': torch.ones(64, 64)}}, d / 'good.pt')
    return d / 'good.pt'

@case
def checkpoint_malicious_zip(d):
    ds = _dataset(d)
    with zipfile.ZipFile(d / 'evil.pt', 'w') as z:  # torch.save's layout around a pickle that runs code
        z.writestr('evil/data.pkl', pickle.dumps({'model': Evil(str(d / MARKER))}, protocol=2))
        z.writestr('evil/version', '3\n'); z.writestr('evil/byteorder', 'little')
    return Case('', ['eval', d / 'evil.pt', ds], 2, ['evil.pt', 'a weights-only load refuses'])

@case
def checkpoint_raw_pickle(d):
    ds = _dataset(d)
    (d / 'raw.pt').write_bytes(pickle.dumps({'model': Evil(str(d / MARKER))}, protocol=2))
    return Case('', ['eval', d / 'raw.pt', ds], 2, ['raw.pt', 'a raw pickle'])

@case
def checkpoint_empty(d):
    ds = _dataset(d); (d / 'empty.pt').write_bytes(b'')
    return Case('', ['eval', d / 'empty.pt', ds], 2, ['empty.pt', 'empty file (0 bytes)'])

@case
def checkpoint_truncated(d):
    ds = _dataset(d); good = _good_checkpoint(d)
    (d / 'cut.pt').write_bytes(good.read_bytes()[:good.stat().st_size // 2]); good.unlink()
    return Case('', ['predict', d / 'cut.pt', ds, '--out', d / 'p.npz'], 2, ['cut.pt', 'truncated or corrupt'])


# ------------------------------------------------------------------ damaged shards

def _truncate(f: Path, keep: int | None = None) -> None:
    b = f.read_bytes(); f.write_bytes(b[:len(b) // 2 if keep is None else keep])

@case
def shard_truncated_info(d):
    p = _dataset(d); _truncate(p / 'data.0001.lmdb')
    return Case('', ['info', p], 2, ['data.0001.lmdb: truncated'])

@case
def shard_truncated_info_limit(d):
    p = _dataset(d); _truncate(p / 'data.0001.lmdb')  # --limit 1 reads only shard 0: the shard checks still run
    return Case('', ['info', p, '--limit', '1'], 2, ['data.0001.lmdb: truncated'])

@case
def shard_truncated_stats(d):
    p = _dataset(d); _truncate(p / 'data.0001.lmdb')
    return Case('', ['data', 'stats', p, '--quiet'], 2, ['data.0001.lmdb: truncated'])

@case
def shard_truncated_verify(d):
    p = _dataset(d); _truncate(p / 'data.0000.lmdb')
    return Case('', ['verify', p, '--quiet'], 2, ['data.0000.lmdb: truncated'])

@case
def shard_emptied(d):
    p = _dataset(d); _truncate(p / 'data.0001.lmdb', keep=0)
    return Case('', ['info', p], 2, ['data.0001.lmdb: empty file (0 bytes)'])

def _flip_record(p: Path, index: int, shard_size: int = 3) -> None:
    "Flip one bit in the tensor bytes of record `index`, in place in its shard file."
    from molkit.data.lmdb import LMDBDataset
    buf, file = LMDBDataset(p).raw(index)
    b, at, n = bytearray(Path(file).read_bytes()), -1, 0
    while (at := b.find(buf, at + 1)) >= 0:  # every copy (LMDB's copy-on-write can leave a stale one in a free page)
        b[at + len(buf) - 30] ^= 0x40; n += 1  # inside the last tensor's bytes
    assert n
    Path(file).write_bytes(bytes(b))

@case
def record_bitflip_verify(d):
    p = _dataset(d); _flip_record(p, 4)
    return Case('', ['verify', p, '--quiet'], 1, ['data.0001.lmdb, index 4: checksum mismatch', '1 of 6 records are bad'])

@case
def record_bitflip_info(d):
    p = _dataset(d); _flip_record(p, 1)
    return Case('', ['info', p], 2, ['data.0000.lmdb, index 1: checksum mismatch'])

@case
def lmdb_corrupted_page(d):
    p = _dataset(d, n=40, shard_size=40)
    f = p / 'data.0000.lmdb'; b = bytearray(f.read_bytes())
    psize = struct.unpack_from('<I', b, 40)[0]
    meta = max((0, psize), key=lambda o: struct.unpack_from('<Q', b, o + 144)[0])  # the newer meta page
    root = struct.unpack_from('<Q', b, meta + 88 + 40)[0]  # root page of the main database
    b[root * psize + 10: root * psize + 12] = b'\xff\xff'  # its page flags: lmdb.CorruptedError on every lookup
    f.write_bytes(bytes(b))
    return Case('', ['info', p], 2, ['data.0000.lmdb: unreadable LMDB file (CorruptedError'])

@case
def schema1_dataset_unchecked(d):
    p = _dataset(d, schema1=True)
    return Case('', ['verify', p, '--quiet'], 0, ['6 records in 2 shard(s) OK', 'UNCHECKED'])

@case
def schema1_ghost_atom(d):
    p = _dataset(d, schema1=True, edit=lambda i, g: g.z.__setitem__(1, 0) if i == 2 else None)
    return Case('', ['info', p], 2, ['data.0000.lmdb, index 2: atomic numbers must be in 1..118, got [0]'])

@case
def schema1_nan_label_stats(d):
    p = _dataset(d, schema1=True, edit=lambda i, g: g.energy.fill_(float('nan')) if i == 2 else None)
    return Case('', ['data', 'stats', p, '--quiet'], 2, [f"{p}, record 2: target 'energy' is nan"])

@case
def schema1_nan_label_verify(d):
    p = _dataset(d, schema1=True, edit=lambda i, g: g.forces.__setitem__((0, 1), float('inf')) if i == 5 else None)
    return Case('', ['verify', p, '--quiet'], 1, ["data.0001.lmdb, index 5: field 'forces' holds inf values"])

@case
def legacy_given_to_stats(d):
    p = _legacy(d)
    return Case('', ['data', 'stats', p, '--quiet'], 2, ['legacy OCP/fairchem LMDB', 'molkit convert --trusted'],
                never_says=['Traceback', 'interrupted'])

@case
def legacy_broken_metadata_npz(d):
    p = _legacy(d); (p / 'metadata.npz').write_bytes(b'')
    return Case('', ['info', p, '--trusted'], 2, [f"{p / 'metadata.npz'}: unreadable metadata file"])


# ------------------------------------------------------------------ convert: overwrite and values

@case
def convert_into_own_folder(d):
    src = _extxyz(d); (d / 'neighbour.txt').write_text('keep me')
    return Case('', ['convert', src, d, '--overwrite'], 2, [f"{d}: refusing to overwrite: it contains the input"])

@case
def convert_legacy_onto_itself(d):
    p = _legacy(d)
    return Case('', ['convert', p, p, '--trusted', '--overwrite'], 2, [f"{p}: refusing to overwrite: it is the input"])

@case
def convert_over_foreign_directory(d):
    src = _extxyz(d); (d / 'mine').mkdir(); (d / 'mine' / 'thesis.tex').write_text('x')
    return Case('', ['convert', src, d / 'mine', '--overwrite'], 2, ['mine: refusing to overwrite: not a molkit dataset'])

@case
def convert_over_dataset_with_foreign_file(d):
    src, p = _extxyz(d), _dataset(d); (p / 'notes.txt').write_text('x')
    return Case('', ['convert', src, p, '--overwrite'], 2, ['refusing to overwrite: holds files molkit did not write (notes.txt)'])

@case
def convert_overwrite_dataset_ok(d):
    src, p = _extxyz(d), _dataset(d)
    return Case('', ['convert', src, p, '--overwrite', '--quiet'], 0, ['wrote'], changes=['ds'])

def _frames_with(fn):
    frames = _atoms(4); fn(frames); return frames

@case
def convert_ghost_atom(d):
    src = _extxyz(d, _frames_with(lambda f: f[1].numbers.__setitem__(0, 0)))
    return Case('', ['convert', src, d / 'out'], 2, [f"{src}, record 1: atomic numbers must be in 1..118, got [0]"])

@case
def convert_nan_energy(d):
    from ase.calculators.singlepoint import SinglePointCalculator
    def nan(f): f[2].calc = SinglePointCalculator(f[2], energy=float('nan'), forces=f[2].get_forces())
    src = _extxyz(d, _frames_with(nan))
    return Case('', ['convert', src, d / 'out'], 2, [f"{src}, record 2: field 'energy' holds NaN values"])

@case
def convert_nan_position(d):
    src = _extxyz(d, _frames_with(lambda f: f[0].positions.__setitem__((1, 2), float('nan'))))
    return Case('', ['convert', src, d / 'out'], 2, [f"{src}, record 0: non-finite positions (atoms [1])"],
                never_says=['Traceback', str(d / 'out')])

@case
def convert_legacy_ghost_atom(d):
    p = _legacy(d, ghost_at=1)
    return Case('', ['convert', p, d / 'out', '--trusted', '--quiet'], 2,
                [f"{p / 'data.0000.lmdb'}, index 1: atomic numbers must be in 1..118, got [0]"])

@case
def convert_removes_stale_partial_write(d):
    src = _extxyz(d)
    for name in ('.out.incomplete-999999999-0123abcd', '.out.incomplete-1-0123abcd'):  # a dead writer; pid 1 is alive
        (d / name).mkdir(); (d / name / 'data.0000.lmdb').write_bytes(b'partial')
    return Case('', ['convert', src, d / 'out', '--quiet'], 0, ['wrote'],
                changes=['out', '.out.incomplete-999999999-0123abcd'])


# ------------------------------------------------------------------ npz

def _rmd17_convert(d, name='rmd17_x.npz'):
    return ['data', 'convert', 'rmd17', d / name, d / 'out', '--quiet']

@case
def npz_empty(d):
    (d / 'rmd17_x.npz').write_bytes(b'')
    return Case('', _rmd17_convert(d), 2, ['rmd17_x.npz: record -: expected a NumPy .npz archive, got an empty file'])

@case
def npz_png_renamed(d):
    (d / 'rmd17_x.npz').write_bytes(b'\x89PNG\r\n\x1a\n' + bytes(200))
    return Case('', _rmd17_convert(d), 2, ['rmd17_x.npz', 'not a zip archive'], never_says=['Traceback', 'unsafely', 'allow_pickle'])

@case
def npz_pickled_objects(d):
    import numpy as np
    np.savez(d / 'rmd17_x.npz', nuclear_charges=np.array([Evil(str(d / MARKER))], dtype=object))
    return Case('', _rmd17_convert(d), 2, ['rmd17_x.npz', 'pickled Python objects'])


# ------------------------------------------------------------------ configs

@case
def config_yaml_syntax(d):
    (d / 'bad.yaml').write_text('data:\n  dataset: [qm9_subset\nmodel: {}\n')
    return Case('', ['train', d / 'bad.yaml'], 2, ['bad.yaml, line', 'invalid YAML'])

@case
def config_yaml_python_tag(d):
    (d / 'bad.yaml').write_text(f'data: !!python/object/apply:os.system ["touch {d / MARKER}"]\n')
    return Case('', ['train', d / 'bad.yaml'], 2, ['bad.yaml, line 1, column 7: YAML tag !!python/object/apply:os.system is not allowed'])

@case
def config_backbone_unknown_key(d):
    cfg = _config(d, hiden_dim=8)
    return Case('', ['train', cfg], 2, ["backbone_cfg.hiden_dim: unknown key for backbone 'schnet'", "did you mean 'hidden_dim'?"],
                changes=['run'])

@case
def config_backbone_negative_dim(d):
    cfg = _config(d, num_filters=-4)
    return Case('', ['train', cfg], 2, ['backbone_cfg.num_filters: must be > 0, got -4'], changes=['run'])


# ------------------------------------------------------------------ training configs and runs (items 3, 9, 12)

def _set(d: Path, *overrides) -> list:
    "`molkit train` of the tiny config with dotted overrides."
    return ['train', _config(d), *[a for o in overrides for a in ('--set', o)]]

@case
def train_negative_batch_size(d):
    return Case('', _set(d, 'data.batch_size=-4'), 2, ['data: batch_size must be >= 1, got -4'])

@case
def train_zero_batch_size(d):
    return Case('', _set(d, 'data.batch_size=0'), 2, ['data: batch_size must be >= 1, got 0'])

@case
def train_zero_max_steps(d):
    return Case('', _set(d, 'train.max_steps=0'), 2, ['train: max_steps must be >= 1, got 0'])

@case
def train_zero_grad_accum(d):
    return Case('', _set(d, 'optim.grad_accum=0'), 2, ['optim: grad_accum must be >= 1, got 0'])

@case
def train_negative_eval_every(d):
    return Case('', _set(d, 'train.eval_every=-1'), 2, ['train: eval_every must be >= 0, got -1'])

@case
def train_empty_training_split(d):
    return Case('', _set(d, 'data.split={train: 0, val: 8}'), 2, ['data: the training split of dataset', 'is empty'],
                changes=['run'])

@case
def train_missing_target(d):
    return Case('', _set(d, 'model.heads={U0: {type: energy}}', 'loss=[{target: U0}]'), 2,
                ["model.heads.U0: dataset 'default'", "has no label 'U0'", 'its records carry'], changes=['run'])

@case
def train_unknown_head_type(d):
    return Case('', _set(d, 'model.heads.energy.type=enrgy'), 2, ["model.heads.energy.type: unknown head type 'enrgy'",
                                                                 "did you mean 'energy'?"])

@case
def train_loss_on_missing_head(d):
    return Case('', _set(d, 'loss.0.target=forces'), 2, ["loss.0.target: 'forces' is not a head; heads: ['energy']"])

def _trained(d: Path) -> Path:
    "A tiny trained run in `d / 'run'`; returns its best checkpoint."
    from molkit.train.loop import train
    train(_config(d))
    return d / 'run' / 'best.pt'

@case
def eval_unknown_split(d):
    return Case('', ['eval', _trained(d), '--split', 'tset'], 2, ["split 'tset': the run's data has splits ['train', 'val']"],
                changes=['run'])

@case
def eval_element_beyond_embedding(d):
    ck = _trained(d)
    from molkit.data.lmdb import write_lmdb
    from molkit.data.atoms import atoms_to_data
    frames = _atoms(3)
    for a in frames: a.numbers[0] = 105
    write_lmdb([atoms_to_data(a) for a in frames], d / 'db105', progress=False)
    return Case('', ['eval', ck, d / 'db105'], 2, ['atomic numbers [105]: the backbone SchNet embeds 1..99'], changes=['run'])



# ------------------------------------------------------------------ fine-tuning (issue 14)

def _finetune(d: Path, *overrides, extra: tuple = ()) -> list:
    "`molkit finetune` of a tiny trained run's best checkpoint with the tiny config (run dir `ft`) and overrides."
    ck = _trained(d)  # writes the tiny config d / 'exp.yaml'
    return ['finetune', ck, d / 'exp.yaml', '--set', f"run_dir={d / 'ft'}", *extra, *[a for o in overrides for a in ('--set', o)]]

@case
def finetune_layer_lr_wrong_length(d):
    return Case('', _finetune(d, 'optim.layer_lr=[0.3, 0.5, 1.0]'), 2,
                ['optim.layer_lr: 3 multipliers for the 2 blocks of SchNet (embedding, interactions.0)'], changes=['run', 'ft'])

@case
def finetune_backbone_mismatch(d):
    return Case('', _finetune(d, 'model.backbone_cfg.hidden_dim=16'), 2,
                ["init.checkpoint: the checkpoint's backbone does not fit this config's (its model.backbone_cfg is",
                 'weights differ, e.g. embedding.weight'], changes=['run', 'ft'])

@case
def finetune_head_mismatch(d):
    return Case('', _finetune(d, 'model.heads.energy.hidden_dim=3', extra=('--load-heads',)), 2,
                ["init.load_heads: head 'energy' of", 'does not match this config'], changes=['run', 'ft'])

@case
def finetune_unknown_checkpoint_format(d):
    import torch
    torch.save({'weights': torch.ones(3), 'step': 1}, d / 'other.pt')
    return Case('', ['finetune', d / 'other.pt', _config(d)], 2,
                [f"{d / 'other.pt'} is not a molkit checkpoint (model, config) or a JMP Lightning checkpoint",
                 "top-level keys ['step', 'weights']"])

def _jmp_file(d: Path, name: str = 'jmp.pt', **extra) -> Path:
    "A JMP-layout checkpoint of a tiny GemNet-OC, with `extra` top-level entries."
    import torch
    from molkit.models.gemnet_oc.model import GEMNET_OC_PRESETS, GemNetOC
    from molkit.train.jmp import jmp_lightning_checkpoint
    torch.save({**jmp_lightning_checkpoint(GemNetOC(GEMNET_OC_PRESETS['tiny'])), **extra}, d / name)
    return d / name

def _gemnet_config(d: Path) -> Path:
    "The tiny config with a tiny GemNet-OC backbone of another edge width than `_jmp_file`'s."
    import yaml
    cfg = yaml.safe_load(_config(d).read_text())
    cfg['model'].update(backbone='gemnet_oc', preset='tiny', backbone_cfg={'direct_forces': False, 'emb_size_edge': 16})
    (d / 'gemnet.yaml').write_text(yaml.safe_dump(cfg))
    return d / 'gemnet.yaml'

@case
def finetune_jmp_backbone_mismatch(d):
    return Case('', ['finetune', _jmp_file(d), _gemnet_config(d)], 2,
                ["init.checkpoint: " + str(d / 'jmp.pt') + ": its GemNet-OC backbone does not match this config's", 'shapes differ'])

@case
def finetune_jmp_malicious_untrusted(d):
    "A JMP-layout file whose hyper_parameters run a shell command when unpickled: refused, and nothing runs."
    p = _jmp_file(d, hyper_parameters=Evil(str(d / MARKER)))
    return Case('', ['finetune', p, _gemnet_config(d)], 2, [str(p), 'a weights-only load refuses', 'would call posix.system'])

@case
def finetune_jmp_malicious_trusted(d):
    "The same file with --trusted: still refused, because unpickling it would call os.system."
    p = _jmp_file(d, hyper_parameters=Evil(str(d / MARKER)))
    return Case('', ['finetune', p, _gemnet_config(d), '--trusted'], 2, [str(p), 'molkit will not load it, trusted or not'])

@case
def finetune_jmp_untrusted(d):
    "A JMP-layout file with pickled config objects (as the released files have): refused without --trusted."
    import fractions
    p = _jmp_file(d, hyper_parameters=fractions.Fraction(1, 3))  # a Python object a weights-only load refuses
    return Case('', ['finetune', p, _gemnet_config(d)], 2,
                [str(p), 'a weights-only load refuses', 'init.trusted: true (molkit finetune --trusted)'])

@case
def train_multi_dataset_missing_label(d):
    "Two datasets; a head names a label that its dataset's records do not carry."
    import yaml
    cfg = yaml.safe_load(_config(d).read_text())
    ds = cfg['data'].pop('dataset')
    cfg['data'].pop('split')
    cfg['data']['datasets'] = [{'name': 'a', 'source': ds, 'split': {'train': 6, 'val': 2}},
                               {'name': 'b', 'source': ds, 'split': {'train': 6, 'val': 2}}]
    cfg['model']['heads'] = {'a/energy': {'type': 'energy'}, 'b/U0': {'type': 'energy'}}
    cfg['loss'] = [{'target': 'a/energy'}, {'target': 'b/U0'}]
    (d / 'multi.yaml').write_text(yaml.safe_dump(cfg))
    return Case('', ['train', d / 'multi.yaml'], 2, ["model.heads.b/U0: dataset 'b'", "has no label 'U0'"], changes=['run'])


# ------------------------------------------------------------------ runner

def snapshot(root: Path) -> dict:
    "relative path -> [size, sha1] of every file (dirs -> None) under `root`."
    out = {}
    for p in sorted(root.rglob('*')):
        rel = str(p.relative_to(root))
        out[rel] = [p.stat().st_size, hashlib.sha1(p.read_bytes()).hexdigest()] if p.is_file() else None
    return out

def build(root: Path, names=None) -> list:
    "Build the cases (all, or `names`) under `root`; returns them with absolute string arguments."
    out = []
    for name in names or CASES:
        d = root / name; d.mkdir(parents=True)
        c = CASES[name](d); c.name = name; c.argv = [str(a) for a in c.argv]
        out.append(c)
    return out

def _child(argv: list, out: Path, err: Path) -> None:
    "In the forked child: run `molkit ARGV` as the console script would, then exit with its status."
    import traceback
    from molkit.cli import main
    fo, fe = os.open(out, os.O_WRONLY | os.O_CREAT), os.open(err, os.O_WRONLY | os.O_CREAT)
    os.dup2(fo, 1); os.dup2(fe, 2)
    sys.argv = ['molkit', *argv]
    try: rc = main(argv)
    except SystemExit as e: rc = e.code if isinstance(e.code, int) else 1
    except BaseException: traceback.print_exc(); rc = 1
    sys.stdout.flush(); sys.stderr.flush()
    os._exit(rc or 0)

def _run_forked(cases: list, root: Path) -> dict:
    "Run every case in its own forked process; name -> {rc, stdout, stderr, before, after}."
    import molkit.cli, molkit.data.convert, molkit.train.loop, molkit.data.readers.molecules  # noqa: F401 (imported once, shared by the children)
    res = {}
    for c in cases:
        d, io = root / c['name'], root / '_io'
        io.mkdir(exist_ok=True)
        out, err = io / f"{c['name']}.out", io / f"{c['name']}.err"
        before = snapshot(d)
        pid = os.fork()
        if pid == 0: _child(c['argv'], out, err)
        _, status = os.waitpid(pid, 0)
        res[c['name']] = {'rc': os.waitstatus_to_exitcode(status), 'stdout': out.read_text(), 'stderr': err.read_text(),
                          'before': before, 'after': snapshot(d)}
    return res

def run_cases(cases: list, root: Path, timeout: int = 300) -> dict:
    "Run `cases` (built under `root`) in a fresh Python process, one forked child per case."
    spec = root / '_cases.json'
    spec.write_text(json.dumps([asdict(c) for c in cases]))
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONPATH': str(Path(__file__).resolve().parents[1])}
    p = subprocess.run([sys.executable, __file__, '--run', str(spec)], capture_output=True, text=True, timeout=timeout, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads((root / '_results.json').read_text())

def changed(before: dict, after: dict) -> set:
    "Paths created, removed or modified."
    return {k for k in before.keys() | after.keys() if before.get(k, 'gone') != after.get(k, 'gone')}


if __name__ == '__main__':
    if sys.argv[1] == '--run':
        spec = Path(sys.argv[2])
        res = _run_forked(json.loads(spec.read_text()), spec.parent)
        (spec.parent / '_results.json').write_text(json.dumps(res))
    else:
        root = Path(sys.argv[1]); root.mkdir(parents=True, exist_ok=True)
        cases = build(root)
        res = run_cases(cases, root)
        for c in cases:
            r = res[c.name]
            print(f"{c.name:<40} rc={r['rc']:<3} {(r['stderr'] or r['stdout']).strip().splitlines()[-1:] }")

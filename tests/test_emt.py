"EMT catalysis data: LMDB round trip through molkit's reader and through plain lmdb + safetensors; seeding; throughput."
import json, time, zlib
import lmdb
import numpy as np
import pytest
import torch
from safetensors.torch import load as st_load
from molkit.data.emt import EMTConfig, generate_emt, is2re_record, write_emt_dataset
from molkit.data.lmdb import LMDBDataset, decode_record


@pytest.fixture(scope='module')
def emt(tmp_path_factory):
    cfg = EMTConfig(n_systems=5, seed=11)
    out = tmp_path_factory.mktemp('emt')
    paths = write_emt_dataset(cfg, out, progress=False)
    # plain reads first: molkit keeps its LMDB environments open per process, and LMDB allows one per file
    plain = {k: _plain_records(paths[k]) for k in ('s2ef', 'is2re')}
    return cfg, generate_emt(cfg, progress=False), paths, plain


def _plain_records(path):
    "Every record of a molkit LMDB directory opened with plain `lmdb`, decoded with plain safetensors (after its CRC-32 trailer)."
    out = []
    for shard in sorted(path.glob('data.*.lmdb')):
        env = lmdb.open(str(shard), subdir=False, readonly=True, lock=False)
        with env.begin() as txn:
            keys = sorted((k for k, _ in txn.cursor() if k.isdigit()), key=int)
            for k in keys:
                buf = txn.get(k)  # schema 2: safetensors bytes, then a little-endian CRC-32 of them
                assert zlib.crc32(buf[:-4]) == int.from_bytes(buf[-4:], 'little')
                out.append((buf, st_load(buf[:-4])))
        env.close()
    return out


def test_s2ef_round_trip(emt):
    cfg, systems, paths, plain = emt
    frames = [f for s in systems for f in s]
    ds, plain = LMDBDataset(paths['s2ef']), plain['s2ef']
    assert len(ds) == len(plain) == len(frames)
    for i in (0, len(frames) // 2, len(frames) - 1):
        a, (buf, t), g = frames[i], plain[i], ds[i]
        assert t['energy'].dtype == torch.float64 and t['energy'].item() == a.get_potential_energy()
        np.testing.assert_array_equal(t['forces'].numpy(), a.get_forces(apply_constraint=False).astype(np.float32))
        np.testing.assert_array_equal(t['pos'].numpy(), a.positions.astype(np.float32))
        np.testing.assert_array_equal(t['tags'].numpy(), a.get_tags())
        for k in ('energy', 'forces', 'pos', 'z', 'tags', 'fixed', 'cell', 'sid', 'fid'):
            assert torch.equal(g[k], t[k]) and torch.equal(decode_record(buf)[k], t[k])
        assert g.fid.item() == a.info['fid'] and g.sid.item() == a.info['sid'] and g.metal == a.info['metal']
        assert g.fixed.sum().item() == 18 and set(g.tags.tolist()) == {0, 1, 2}


def test_is2re_round_trip(emt):
    cfg, systems, paths, plain = emt
    ds, plain = LMDBDataset(paths['is2re']), plain['is2re']
    table = json.loads(paths['systems'].read_text())
    assert len(ds) == len(plain) == cfg.n_systems == len(table['systems'])
    assert table['config']['seed'] == 11
    for sid, s in enumerate(systems):
        t, g = plain[sid][1], ds[sid]
        assert t['energy_init'].item() == s[0].get_potential_energy()
        assert t['energy_relaxed'].item() == s[-1].get_potential_energy()
        np.testing.assert_array_equal(t['pos_relaxed'].numpy(), s[-1].positions.astype(np.float32))
        assert torch.equal(g.pos_relaxed, t['pos_relaxed']) and g.sid.item() == sid
        assert 'forces' not in t and 'energy' not in t
        assert t['energy_relaxed'].item() - t['ads_energy_relaxed'].item() == pytest.approx(
            t['energy_init'].item() - t['ads_energy_init'].item(), abs=1e-9)  # same slab + gas reference
        assert table['systems'][sid]['n_frames'] == len(s)


def test_seeded(emt):
    cfg, systems, _, _ = emt
    again = generate_emt(EMTConfig(n_systems=2, seed=11), progress=False)
    for s, t in zip(systems, again):
        assert len(s) == len(t)
        assert all(np.array_equal(a.positions, b.positions) and a.get_potential_energy() == b.get_potential_energy()
                   for a, b in zip(s, t))
    assert is2re_record(s).info['energy_relaxed'] == is2re_record(t).info['energy_relaxed']


@pytest.mark.slow
def test_100_systems(tmp_path):
    "The full-size default run writes 100 IS2RE records (its time is measured by benchmarks/bench_data.py)."
    paths = write_emt_dataset(EMTConfig(n_systems=100), tmp_path / 'emt', progress=False)
    assert len(LMDBDataset(paths['is2re'])) == 100

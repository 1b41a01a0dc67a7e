"Tests of molkit's LMDB format, the legacy OCP/fairchem reader and conversion (molkit.data.lmdb/legacy/convert)."
import json, os, pickle, zlib
from pathlib import Path
import lmdb
import numpy as np
import pytest
import torch
from safetensors.torch import save as st_save
from torch_geometric.data import Data
from torch_geometric.loader import DataLoader
from molkit.data.lmdb import LMDBDataset, LMDBError, write_lmdb, encode_record, META_KEY, SHARD_NAME
from molkit.data.legacy import LegacyLMDBDataset, old_pyg_data
from molkit.data.convert import convert, dataset_info, format_info


# ---------------------------------------------------------------- fixtures

def contract_record(n: int, seed: int) -> Data:
    "A contract graph with every common field and non-tensor bookkeeping."
    g = torch.Generator().manual_seed(seed)
    return Data(z=torch.randint(1, 84, (n,), generator=g), pos=torch.randn(n, 3, generator=g) * 5,
                cell=torch.randn(1, 3, 3, generator=g), pbc=torch.tensor([[True, True, False]]),
                natoms=torch.tensor([n]), tags=torch.randint(0, 3, (n,), generator=g), fixed=torch.rand(n, generator=g) < .5,
                energy=torch.randn(1, dtype=torch.float64, generator=g) * 1e4, forces=torch.randn(n, 3, generator=g),
                stress=torch.randn(1, 3, 3, generator=g), energy_relaxed=torch.randn(1, dtype=torch.float64, generator=g),
                pos_relaxed=torch.randn(n, 3, generator=g), sid=torch.tensor([seed * 11]), fid=torch.tensor([seed]),
                mu=torch.randn(1, dtype=torch.float64, generator=g), charges=torch.randn(n, generator=g),
                calc_keys=['energy', 'forces', 'stress'], info_keys=['mu'], array_keys=['charges'], name=f"s{seed}")


def fairchem_record(n: int, seed: int) -> Data:
    "A record laid out as fairchem v1's AtomsToGraphs + preprocess_ef.py make it."
    g = torch.Generator().manual_seed(seed)
    d = Data(cell=torch.eye(3).reshape(1, 3, 3) * 9 + torch.rand(1, 3, 3, generator=g),
             pos=torch.randn(n, 3, generator=g) * 4, atomic_numbers=torch.randint(1, 80, (n,), generator=g).float(),
             natoms=n)
    d.y = float(torch.randn(1, generator=g)) * 3
    d.force = torch.randn(n, 3, generator=g)
    d.fixed = (torch.rand(n, generator=g) < .3).float()
    d.tags = torch.LongTensor(torch.randint(0, 3, (n,), generator=g))
    d.sid, d.fid = torch.LongTensor([1000 + seed]), torch.LongTensor([seed % 7])
    return d


def write_fairchem(records: list, folder: Path, n_shards: int) -> Path:
    "Write shards exactly as fairchem v1 preprocess_ef.py does (independent of molkit's helper)."
    folder.mkdir(parents=True)
    chunks = np.array_split(np.arange(len(records)), n_shards)
    for i, chunk in enumerate(chunks):
        db = lmdb.open(str(folder / f"data.{i:04d}.lmdb"), map_size=1 << 30, subdir=False, meminit=False, map_async=True)
        for idx, j in enumerate(chunk):
            txn = db.begin(write=True)
            txn.put(f"{idx}".encode("ascii"), pickle.dumps(records[j], protocol=-1))
            txn.commit()
        txn = db.begin(write=True)
        txn.put("length".encode("ascii"), pickle.dumps(len(chunk), protocol=-1))
        txn.commit()
        db.sync(); db.close()
    np.savez(folder / "metadata.npz", natoms=np.array([r.natoms for r in records]))
    return folder


def same(a: Data, b: Data) -> bool:
    "Exact equality of all fields (keys, dtypes, shapes, values)."
    if set(a.keys()) != set(b.keys()): return False
    for k in a.keys():
        x, y = a[k], b[k]
        if isinstance(x, torch.Tensor):
            if not (isinstance(y, torch.Tensor) and x.dtype == y.dtype and x.shape == y.shape and torch.equal(x, y)): return False
        elif x != y: return False
    return True


def poke(file: Path, key: bytes, value: bytes | None):
    "Overwrite (or delete, value None) one key of an LMDB file, as corruption would."
    env = lmdb.open(str(file), subdir=False, lock=False, map_size=1 << 30)
    with env.begin(write=True) as txn:
        txn.delete(key) if value is None else txn.put(key, value)
    env.close()


# ---------------------------------------------------------------- molkit format

def test_round_trip_exact(tmp_path):
    recs = [contract_record(n, s) for s, n in enumerate([1, 5, 80, 3, 17])]
    ds = LMDBDataset(write_lmdb(recs, tmp_path / "ds", shard_size=2, progress=False))
    assert len(ds) == 5 and ds.metadata["shards"] == [2, 2, 1] and ds.natoms.tolist() == [1, 5, 80, 3, 17]
    assert ds.metadata["units"]["energy"] == "eV" and "mu" in ds.metadata["fields"]
    for i, r in enumerate(recs): assert same(ds[i], r), i


def test_atomic_write(tmp_path, monkeypatch):
    def broken():
        yield from [contract_record(4, s) for s in range(5)]
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt): write_lmdb(broken(), tmp_path / "ds", shard_size=2, progress=False)
    assert list(tmp_path.iterdir()) == []
    # a crash that leaves the temporary directory behind (no cleanup): it does not open as a dataset
    import molkit.data.lmdb as ml
    monkeypatch.setattr(ml.shutil, "rmtree", lambda *a, **k: None)
    with pytest.raises(KeyboardInterrupt): write_lmdb(broken(), tmp_path / "ds", shard_size=2, progress=False)
    assert not (tmp_path / "ds").exists()
    (left,) = list(tmp_path.iterdir())
    with pytest.raises(LMDBError, match="no completed dataset metadata"): LMDBDataset(left)


def test_bad_molkit_inputs(tmp_path):
    recs = [contract_record(n, s) for s, n in enumerate([4, 6, 5])]
    make = lambda name: write_lmdb(recs, tmp_path / name, shard_size=10, progress=False)
    shard = lambda p: p / SHARD_NAME.format(0)
    p = make("missing"); poke(shard(p), b"1", None)
    with pytest.raises(LMDBError, match=r"data.0000.lmdb, index 1: record key 1 is missing"): LMDBDataset(p)[1]
    good = encode_record(recs[2])
    p = make("truncated"); poke(shard(p), b"2", good[:-10])
    with pytest.raises(LMDBError, match=r"index 2: checksum mismatch"): LMDBDataset(p)[2]
    # bytes with a valid CRC-32 still go through the structural and value checks
    crc = lambda b: b + zlib.crc32(b).to_bytes(4, "little")
    p = make("corrupt"); poke(shard(p), b"0", crc(b"\x10\x00\x00\x00\x00\x00\x00\x00" + b"garbage!" * 4))
    with pytest.raises(LMDBError, match=r"index 0: corrupt record header"): LMDBDataset(p)[0]
    nan = recs[1].to_dict(); nan["pos"] = nan["pos"].clone(); nan["pos"][3, 1] = float("nan")
    p = make("nan"); poke(shard(p), b"1", crc(st_save({k: v for k, v in nan.items() if isinstance(v, torch.Tensor)})))
    with pytest.raises(LMDBError, match=r"index 1: non-finite positions \(atoms \[3\]\)"): LMDBDataset(p)[1]
    wrong = {k: v for k, v in recs[0].to_dict().items() if isinstance(v, torch.Tensor)}; wrong["z"] = wrong["z"].int()
    p = make("dtype"); poke(shard(p), b"0", crc(st_save(wrong)))
    with pytest.raises(LMDBError, match=r"index 0: field 'z' has dtype torch.int32"): LMDBDataset(p)[0]
    p = make("schema"); env = lmdb.open(str(shard(p)), subdir=False, readonly=True, lock=False)
    meta = json.loads(env.begin().get(META_KEY)); env.close(); meta["schema_version"] = 99
    poke(shard(p), META_KEY, json.dumps(meta).encode())
    with pytest.raises(LMDBError, match="unknown format/schema version 'molkit-lmdb'/99"): LMDBDataset(p)
    (tmp_path / "text").mkdir(); (tmp_path / "text" / SHARD_NAME.format(0)).write_text("not an lmdb\n" * 100)
    with pytest.raises(LMDBError, match="data.0000.lmdb: not a readable LMDB file"): LMDBDataset(tmp_path / "text")
    (tmp_path / "file.txt").write_text("hello")
    with pytest.raises(LMDBError, match="not a molkit LMDB dataset"): LMDBDataset(tmp_path / "file.txt")
    assert issubclass(LMDBError, ValueError)


# ---------------------------------------------------------------- legacy format

def test_legacy_fairchem_field_for_field(tmp_path):
    recs = [fairchem_record(n, s) for s, n in enumerate([7, 12, 3, 30, 9, 5, 11])]
    src = write_fairchem(recs, tmp_path / "s2ef", n_shards=3)
    with pytest.raises(LMDBError, match=r"unpickling runs code.*trusted=True.*molkit convert --trusted"):
        LegacyLMDBDataset(src)
    ds = LegacyLMDBDataset(src, trusted=True)
    assert len(ds) == 7 and ds.natoms.tolist() == [7, 12, 3, 30, 9, 5, 11]
    for r, d in zip(recs, (ds[i] for i in range(len(ds)))):
        assert torch.equal(d.z, r.atomic_numbers.long()) and d.z.dtype == torch.int64
        assert torch.equal(d.pos, r.pos) and torch.equal(d.cell, r.cell) and torch.equal(d.tags, r.tags)
        assert torch.equal(d.forces, r.force) and torch.equal(d.fixed, r.fixed.bool()) and d.fixed.dtype == torch.bool
        assert d.energy.dtype == torch.float64 and d.energy.tolist() == [r.y]
        assert d.natoms.tolist() == [r.natoms] and d.sid.tolist() == r.sid.tolist() and d.fid.tolist() == r.fid.tolist()
        assert d.pbc.tolist() == [[True, True, True]]
        assert set(d.keys()) == {"z", "pos", "cell", "pbc", "natoms", "tags", "fixed", "energy", "forces", "sid", "fid"}


def test_legacy_old_pyg_single_file_and_edges(tmp_path):
    recs = [fairchem_record(n, s) for s, n in enumerate([4, 6, 5])]
    old = []
    for r in recs:
        f = r.to_dict()
        f.update(y_relaxed=f.pop("y"), y_init=1.5, pos_relaxed=f["pos"] + 0.1, edge_index=torch.tensor([[0, 1], [1, 0]]),
                 cell_offsets=torch.tensor([[0, 0, 1], [0, 0, -1]]), distances=torch.tensor([2.0, 2.0]))
        old.append(old_pyg_data(**f))
    assert "_store" not in pickle.loads(pickle.dumps(old[0], protocol=-1)).__dict__  # really the PyG < 2 layout
    file = tmp_path / "is2re.lmdb"
    db = lmdb.open(str(file), map_size=1 << 30, subdir=False, meminit=False, map_async=True)
    with db.begin(write=True) as txn:
        for i, o in enumerate(old): txn.put(f"{i}".encode("ascii"), pickle.dumps(o, protocol=-1))
        txn.put(b"length", pickle.dumps(len(old), protocol=-1))
    db.close()
    ds = LegacyLMDBDataset(file, trusted=True)
    assert len(ds) == 3  # the `length` key is not a record (no phantom index)
    with pytest.raises(IndexError): ds[3]
    assert ds.natoms.tolist() == [4, 6, 5]  # no metadata.npz: counted by reading
    d = ds[1]
    assert d.energy_relaxed.tolist() == [recs[1].y] and d.energy_init.tolist() == [1.5] and "energy" not in d
    assert torch.equal(d.pos_relaxed, recs[1].pos + 0.1) and "edge_index" not in d and "shifts" not in d
    e = LegacyLMDBDataset(file, trusted=True, keep_edges=True)[1]
    assert e.shifts.tolist() == [[0, 0, 1], [0, 0, -1]] and e.shifts.dtype == torch.float32 and e.edge_len.tolist() == [2, 2]
    k = LegacyLMDBDataset(file, trusted=True, key_mapping={"y_relaxed": "energy"})[0]
    assert k.energy.tolist() == [recs[0].y]


def test_bad_legacy_inputs(tmp_path):
    recs = [fairchem_record(n, s) for s, n in enumerate([4, 6, 5])]
    make = lambda name: write_fairchem(recs, tmp_path / name, n_shards=1)
    p = make("missing"); poke(p / "data.0000.lmdb", b"1", None)
    with pytest.raises(LMDBError, match=r"data.0000.lmdb, index 1: record key 1 is missing"): LegacyLMDBDataset(p, trusted=True)[1]
    p = make("truncated"); poke(p / "data.0000.lmdb", b"2", pickle.dumps(recs[2], protocol=-1)[:-40])
    with pytest.raises(LMDBError, match=r"index 2: corrupt or truncated record"): LegacyLMDBDataset(p, trusted=True)[2]
    bad = recs[0].clone(); bad.pos[0, 2] = float("inf")
    p = make("nan"); poke(p / "data.0000.lmdb", b"0", pickle.dumps(bad, protocol=-1))
    with pytest.raises(LMDBError, match=r"index 0: non-finite positions"): LegacyLMDBDataset(p, trusted=True)[0]
    p = make("notdata"); poke(p / "data.0000.lmdb", b"0", pickle.dumps([1, 2], protocol=-1))
    with pytest.raises(LMDBError, match=r"index 0: expected a pickled PyG Data, got list"): LegacyLMDBDataset(p, trusted=True)[0]
    p = make("meta"); np.savez(p / "metadata.npz", natoms=np.array([1, 2]))
    with pytest.raises(LMDBError, match="natoms has 2 entries but"): LegacyLMDBDataset(p, trusted=True)
    (tmp_path / "junk.lmdb").write_bytes(b"\x00junk" * 1000)
    with pytest.raises(LMDBError, match="junk.lmdb: not a readable LMDB file"): LegacyLMDBDataset(tmp_path / "junk.lmdb", trusted=True)
    (tmp_path / "empty").mkdir()
    with pytest.raises(LMDBError, match="holds no \\*.lmdb files"): LegacyLMDBDataset(tmp_path / "empty", trusted=True)


# ---------------------------------------------------------------- loaders, Atoms, convert

def test_dataloader_workers_both_formats(tmp_path):
    recs = [fairchem_record(n, s) for s, n in enumerate([5, 8, 3, 9, 4, 6, 7, 2])]
    legacy = LegacyLMDBDataset(write_fairchem(recs, tmp_path / "legacy", n_shards=2), trusted=True)
    ours = LMDBDataset(convert(tmp_path / "legacy", tmp_path / "ours", trusted=True, progress=False, shard_size=3))
    assert same(ours[0], legacy[0])  # parent process opened the files before forking the workers
    for ds in (legacy, ours):
        batches = list(DataLoader(ds, batch_size=3, num_workers=2, shuffle=False))
        assert [b.num_graphs for b in batches] == [3, 3, 2]
        assert torch.equal(torch.cat([b.pos for b in batches]), torch.cat([r.pos for r in recs]))
        assert torch.equal(torch.cat([b.energy for b in batches]), torch.tensor([r.y for r in recs], dtype=torch.float64))
        assert torch.equal(torch.cat([b.natoms for b in batches]), torch.tensor([r.natoms for r in recs]))


def _emt_slab():
    from ase.build import fcc111, add_adsorbate, molecule
    from ase.calculators.emt import EMT
    from ase.constraints import FixAtoms
    a = fcc111("Pt", size=(2, 2, 3), vacuum=7.0)
    add_adsorbate(a, molecule("CO"), 2.0, "ontop")
    a.set_constraint(FixAtoms(mask=a.get_tags() == 3))
    a.rattle(0.03, seed=1)
    a.calc = EMT(); a.get_potential_energy(); a.get_forces()
    return a


def test_atoms_round_trip(tmp_path):
    from ase.build import molecule
    from ase.calculators.emt import EMT
    from molkit.data.atoms import atoms_to_data, data_to_atoms, atoms_equal
    slab, mol = _emt_slab(), molecule("CH3CH2OH")
    mol.calc = EMT(); mol.get_potential_energy(); mol.info["mu"] = 1.69
    # a slab and a molecule carry different labels, so each is its own dataset (a dataset has one set of fields)
    slabs = LMDBDataset(write_lmdb([slab, slab], tmp_path / "slabs", progress=False))
    mols = LMDBDataset(write_lmdb([mol], tmp_path / "mols", progress=False))
    for ds, atoms in ((slabs, slab), (mols, mol)):
        assert same(ds[0], atoms_to_data(atoms))
        assert atoms_equal(data_to_atoms(ds[0]), data_to_atoms(atoms_to_data(atoms)))
    d = slabs[1]
    assert d.fixed.sum().item() == 4 and d.tags.tolist() == slab.get_tags().tolist() and d.pbc.tolist() == [[True, True, False]]
    assert d.energy.item() == pytest.approx(slab.get_potential_energy(), abs=1e-9)
    assert mols[0].mu.tolist() == [1.69] and mols[0].pbc.tolist() == [[False] * 3]
    with pytest.raises(LMDBError, match="record 1: fields differ"): write_lmdb([slab, mol], tmp_path / "mixed", progress=False)


def test_convert_extxyz_and_info(tmp_path):
    import ase.io
    frames = [_emt_slab() for _ in range(3)]
    ase.io.write(tmp_path / "f.extxyz", frames)
    ds = LMDBDataset(convert(tmp_path / "f.extxyz", tmp_path / "ds", progress=False))
    assert len(ds) == 3 and ds.natoms.tolist() == [14] * 3
    info = dataset_info(tmp_path / "ds", progress=False)
    assert info["elements"] == {"C": 3, "O": 3, "Pt": 36} and info["n_atoms"] == 42
    assert info["labels"]["energy"]["count"] == 3
    assert info["labels"]["energy"]["mean"] == pytest.approx(frames[0].get_potential_energy(), abs=1e-6)
    assert "energy" in format_info(info) and "Pt 36" in format_info(info)
    (tmp_path / "bad.xyz").write_text("3\n\nH 0 0\n")
    with pytest.raises(ValueError): convert(tmp_path / "bad.xyz", tmp_path / "bad", progress=False)
    assert not (tmp_path / "bad").exists()


def test_fuzzed_records_raise_lmdberror():
    "Random truncations and byte flips either decode or raise LMDBError, never anything else."
    from molkit.data.lmdb import decode_record
    good = encode_record(contract_record(6, 3))
    rng = np.random.default_rng(0)
    for trial in range(400):
        b = bytearray(good)
        if trial % 4 == 0: b = b[:rng.integers(0, len(b))]
        else:
            for pos in rng.integers(0, min(len(b), 400), size=rng.integers(1, 4)): b[pos] = rng.integers(0, 256)
        try: decode_record(bytes(b), "fuzz.lmdb", trial)
        except LMDBError as e: assert f"fuzz.lmdb, index {trial}:" in str(e)


def test_empty_dataset(tmp_path):
    ds = LMDBDataset(write_lmdb([], tmp_path / "empty", progress=False))
    assert len(ds) == 0 and ds.natoms.tolist() == [] and ds.metadata["shards"] == [0]
    assert "0 structures" in format_info(dataset_info(tmp_path / "empty", progress=False))

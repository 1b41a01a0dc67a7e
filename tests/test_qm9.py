"QM9 readers and the shipped subset against the qm9pack wheel (skipped with a message when qm9pack is not installed)."
import itertools, tarfile, time
import numpy as np
import pytest
from molkit.keys import HARTREE_EV
from molkit.data.readers.base import READERS, ReaderError, read_structures
from molkit.data.readers.qm9 import (QM9_TARGETS, QM9_FACTORS, build_qm9_subset, load_qm9_subset, qm9pack_dir,
                                     read_qm9pack)


@pytest.fixture(scope='module')
def pack():
    try: return qm9pack_dir()
    except ModuleNotFoundError as e: pytest.skip(f"needs the qm9pack wheel: {e}")


def _fortran(x: float) -> str:
    "A number the way QM9's Mathematica export writes it: tiny values with a `*^` exponent."
    return f"{x:.10g}".replace('e', '*^') if x != 0 and abs(x) < 1e-3 else f"{x:.10f}"


def _qm9_xyz_text(a) -> str:
    "One molecule in the original dsgdb9nsd_NNNNNN.xyz layout, from the qm9pack values of `a`."
    i = a.info
    raw = np.array([i[k] for k in QM9_TARGETS]) / QM9_FACTORS
    props = ['gdb', str(i['index']), *(f"{i[f'rot_{k}']:.6f}" for k in 'ABC'), *(f"{v:.6f}" for v in raw)]
    atoms = [f"{s}\t" + '\t'.join(_fortran(x) for x in p) + f"\t{q:.6f}"
             for s, p, q in zip(a.get_chemical_symbols(), a.positions, a.arrays['mulliken'])]
    return '\n'.join([str(len(a)), '\t'.join(props) + '\t', *atoms, '\t'.join(f"{f:.4f}" for f in i['freqs']),
                      f"{i['smiles']}\t{i['smiles']}\t", f"{i['inchi']}\t{i['inchi']}"]) + '\n'


def test_registered():
    assert {'qm9_xyz', 'qm9pack'} <= set(READERS)


def test_subset_matches_qm9pack(pack):
    sub = load_qm9_subset()
    ref = {a.info['index']: a for a in read_qm9pack(pack, indices=[a.info['index'] for a in sub], extras=False)}
    assert len(ref) == len(sub) == 5000
    for a in sub:
        r = ref[a.info['index']]
        assert a.info['U0'] == r.info['U0']  # same float64 source value, same conversion
        assert all(a.info[k] == r.info[k] for k in QM9_TARGETS)
        np.testing.assert_array_equal(a.numbers, r.numbers)
        np.testing.assert_allclose(a.positions, r.positions, atol=1e-6)  # float32 storage
    ch4 = next(a for a in read_qm9pack(pack, indices=[1]))
    assert abs(ch4.info['U0'] - (-40.47893 * HARTREE_EV)) < 1e-9  # CH4, by hand from the published file


def test_xyz_archive_matches_qm9pack(pack, tmp_path):
    mols = list(itertools.islice(read_qm9pack(pack), 30))
    arc = tmp_path / 'dsgdb9nsd.xyz.tar.bz2'
    with tarfile.open(arc, 'w:bz2') as tar:
        for a in mols:
            f = tmp_path / f"dsgdb9nsd_{a.info['index']:06d}.xyz"
            f.write_text(_qm9_xyz_text(a))
            tar.add(f, arcname=f.name)
    text = (tmp_path / 'dsgdb9nsd_000004.xyz').read_text()
    got = list(read_structures('qm9_xyz', arc))
    assert [a.info['index'] for a in got] == [a.info['index'] for a in mols]
    assert '*^' in ''.join((tmp_path / f"dsgdb9nsd_{a.info['index']:06d}.xyz").read_text() for a in mols)
    for a, r in zip(got, mols):
        assert a.get_chemical_formula() == r.get_chemical_formula()
        np.testing.assert_allclose(a.positions, r.positions, atol=1e-9)
        np.testing.assert_allclose([a.info[k] for k in QM9_TARGETS], [r.info[k] for k in QM9_TARGETS], rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(a.info['freqs'], r.info['freqs'], atol=1e-4)
        assert a.info['smiles'] == r.info['smiles'] and a.info['inchi'] == r.info['inchi']
    # bad input: one member loses an atom line -> the error names the archive member, the line and the expectation
    lines = text.splitlines()
    (tmp_path / 'bad').mkdir()
    (tmp_path / 'bad' / 'dsgdb9nsd_000004.xyz').write_text('\n'.join(lines[:3] + lines[4:]))
    with pytest.raises(ReaderError, match=r"dsgdb9nsd_000004\.xyz: record end: expected 9 lines .*got 8 lines"):
        list(read_structures('qm9_xyz', tmp_path / 'bad'))


def test_build_subset_is_seeded(pack, tmp_path):
    a, b, c = (build_qm9_subset(20, seed=s, out=tmp_path / f"{i}.npz", path=pack) for i, s in enumerate((3, 3, 4)))
    la, lb, lc = (load_qm9_subset(path=p) for p in (a, b, c))
    assert [m.info['index'] for m in la] == [m.info['index'] for m in lb] != [m.info['index'] for m in lc]
    assert all(np.array_equal(x.positions, y.positions) for x, y in zip(la, lb))


def test_subset_loads_as_atoms_and_graphs():
    "Both forms hold the same 5,000 molecules (load time is measured by benchmarks/bench_data.py)."
    mols, graphs = load_qm9_subset(), load_qm9_subset(as_atoms=False)
    assert len(mols) == len(graphs) == 5000
    assert all(g.U0.item() == m.info['U0'] and g.z.tolist() == m.numbers.tolist() for m, g in zip(mols[::97], graphs[::97]))

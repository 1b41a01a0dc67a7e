"The `molkit` console script end to end: convert, info, data list/convert/stats/split, and bad input."
import json, os, subprocess, sys
from pathlib import Path
import numpy as np
import pytest
import ase, ase.io
from ase.build import fcc111, add_adsorbate
from ase.calculators.emt import EMT
from ase.constraints import FixAtoms
from _train_helpers import molkit as _molkit

AIMS = Path(ase.__file__).parent / 'test/testdata/aims/md.out'


def molkit(*args, ok=True):
    "Run the installed console script; return the completed process."
    return _molkit(*args, check=ok)


@pytest.fixture(scope='module')
def slabs(tmp_path_factory):
    "An extxyz trajectory of 6 rattled EMT Cu(111)+O slabs with energies, forces, tags and fixed atoms."
    d = tmp_path_factory.mktemp('slabs')
    frames = []
    for s in range(6):
        a = fcc111('Cu', size=(2, 2, 3), vacuum=6.0); add_adsorbate(a, 'O', 1.8, 'fcc')
        a.set_constraint(FixAtoms(mask=a.get_tags() == 3)); a.rattle(0.05, seed=s)
        a.calc = EMT(); a.get_forces(); frames.append(a)
    ase.io.write(d / 'slabs.extxyz', frames)
    return d / 'slabs.extxyz', frames


def test_convert_info_stats_split(slabs, tmp_path):
    src, frames = slabs
    out = molkit('convert', src, tmp_path / 'ds', '--quiet')
    assert 'wrote' in out.stdout
    info = json.loads(molkit('info', tmp_path / 'ds', '--json').stdout)
    text = molkit('info', tmp_path / 'ds').stdout
    assert 'Cu' in text
    assert info['n_structures'] == 6 and info['elements'] == {'O': 6, 'Cu': 72}
    e = np.array([a.get_potential_energy() for a in frames])
    assert abs(info['labels']['energy']['mean'] - e.mean()) < 1e-6
    molkit('data', 'stats', tmp_path / 'ds', '--quiet')
    stats = json.loads((tmp_path / 'ds' / 'stats.json').read_text())
    assert stats['n_structures'] == 6 and stats['targets']['energy']['n'] == 6
    molkit('data', 'split', tmp_path / 'ds', '--sizes', 'train=4', 'val=1', 'test=rest', '--seed', '3')
    split = json.loads((tmp_path / 'ds' / 'splits' / 'random.json').read_text())['splits']
    assert sorted(sum(split.values(), [])) == list(range(6)) and len(split['train']) == 4


def test_convert_needs_format_for_unguessable_names(tmp_path):
    p = molkit('convert', AIMS, tmp_path / 'aims', ok=False)
    assert p.returncode == 2 and "format='aims-output'" in p.stderr and 'Traceback' not in p.stderr
    assert not (tmp_path / 'aims').exists()
    molkit('convert', AIMS, tmp_path / 'aims', '--format', 'aims-output', '--quiet')
    assert 'H' in molkit('info', tmp_path / 'aims').stdout


def test_data_list_and_convert_with_a_reader(tmp_path):
    names = molkit('data', 'list').stdout
    for r in ('ase', 'rmd17', 'qm9_xyz', 'oc20', 'spice'): assert r in names, r
    n, m = 5, 9
    rng = np.random.default_rng(0)
    np.savez(tmp_path / 'rmd17_x.npz', nuclear_charges=np.array([6, 1, 1, 1, 1, 8, 1, 6, 1]),
             coords=rng.normal(size=(n, m, 3)) * 2, energies=rng.normal(size=n) - 1e5,
             forces=rng.normal(size=(n, m, 3)), old_indices=np.arange(n),
             old_energies=rng.normal(size=n), old_forces=rng.normal(size=(n, m, 3)))
    molkit('data', 'convert', 'rmd17', tmp_path / 'rmd17_x.npz', tmp_path / 'r', '--quiet')
    from molkit.data.lmdb import LMDBDataset
    ds = LMDBDataset(tmp_path / 'r')
    assert len(ds) == n and ds[0].forces.shape == (m, 3)


def test_user_errors_exit_2_without_traceback(tmp_path):
    for args in (('info', tmp_path / 'missing'), ('data', 'split', tmp_path / 'missing'),
                 ('data', 'convert', 'no_such_reader', AIMS, tmp_path / 'x')):
        p = molkit(*args, ok=False)
        assert p.returncode == 2 and p.stderr.startswith('molkit: error:') and 'Traceback' not in p.stderr, (args, p.stderr)
    assert molkit('data', ok=False).returncode == 2

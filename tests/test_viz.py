"Visualisation outside notebooks: torch inputs, no training imports (except viz.collect), reports, widget exports."
import ast, importlib.util, sys
from pathlib import Path
import numpy as np, torch
from molkit.targets.binning import Bins
from molkit.targets.uncertainty import gaussian_logits
from molkit.viz.figures import distributions_grid, parity_figure, uncertainty_error_figure
from molkit.viz.report import Table, report_html, text_html, write_html_report
from molkit.viz.widgets import distribution_explorer

def _molkit_imports(mod: str) -> set[str]:
    "molkit modules imported by `mod`'s source (absolute and relative imports)."
    path = Path(importlib.util.find_spec(mod).origin)
    pkg = mod if path.name == '__init__.py' else mod.rpartition('.')[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import): names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = '.'.join(pkg.split('.')[:len(pkg.split('.')) - node.level + 1]) if node.level else ''
            names = ['.'.join(filter(None, [base, node.module]))]
        else: continue
        out |= {n for n in names if n.split('.')[0] == 'molkit' and importlib.util.find_spec(n) is not None}
    return out

def test_viz_imports_no_training_code():
    seen, todo = set(), ['molkit.viz.figures', 'molkit.viz.report', 'molkit.viz.widgets']
    while todo:
        m = todo.pop()
        if m not in seen: seen.add(m); todo += sorted(_molkit_imports(m))
    assert 'molkit.targets.binning' in seen and not [m for m in seen if m.startswith('molkit.train')], sorted(seen)

def _toy(n=8):
    bins = Bins(torch.linspace(-1, 1, 21, dtype=torch.float64))
    y = torch.linspace(-0.5, 0.5, n, dtype=torch.float64)
    probs = torch.softmax(gaussian_logits(y + 0.05, 0.1, bins), -1)
    return bins, y, probs

def test_figures_take_torch_tensors():
    bins, y, probs = _toy()
    fig = distributions_grid(probs, bins.edges, y, n_cols=4)
    assert len(fig.data) == 8 * 4 and fig.layout.height == 2 * 260
    fig = parity_figure(y, y + 0.05)
    assert 'MAE 0.05 eV' in fig.layout.title.text
    u = torch.arange(8.)
    assert 'ρ = 1.000' in uncertainty_error_figure(u, u * 2).layout.title.text

def test_report_without_figures_has_no_plotlyjs():
    doc = report_html('only tables', [('T', 'text', [{'a': 1.5}, {'a': 2}])])
    assert '<script' not in doc and '<td>1.5</td>' in doc

def test_text_without_markdown_renderer(monkeypatch):
    monkeypatch.setitem(sys.modules, 'markdown_it', None)  # import fails as if not installed
    assert text_html('a < b\n\nsecond') == '<p>a &lt; b</p><p>second</p>'

def test_report_on_disk(tmp_path):
    bins, y, probs = _toy()
    p = write_html_report(tmp_path / 'r.html', 'R', [('Grid', '', distributions_grid(probs[:2], bins.edges, y[:2])),
                                                      ('Tab', '', Table([{'x': torch.tensor(0.25)}]))])
    doc = p.read_text(encoding='utf-8')
    assert '<td>0.25</td>' in doc and doc.count('id="fig-') == 1 and not list(tmp_path.glob('*.tmp'))

def test_explorer_without_ipython():
    bins, y, probs = _toy()
    ex = distribution_explorer(probs, bins.edges, y)
    ex.controls[1].value = 5
    assert ex.figure.layout.title.text == 'structure 5'
    assert 'application/vnd.plotly.v1+json' in ex.out.outputs[0]['data']

def test_widgets_export_standalone_html(tmp_path):
    "Every explorer's figures export to one self-contained page (plotly.js inline once, no external script)."
    from molkit.viz.results import toy_result
    from molkit.viz.explorer import DistributionExplorer
    from molkit.viz.dashboard import ErrorDashboard
    from molkit.viz.structure import StructureViewer
    r = toy_result()
    for i, w in enumerate([DistributionExplorer(r), ErrorDashboard(r), StructureViewer(r)]):
        doc = w.export_html(tmp_path / f'{i}.html', type(w).__name__).read_text(encoding='utf-8')
        assert doc.count('id="fig-') == len(w.figures()) >= 1 and '<script src' not in doc and 'cdn.plot.ly' not in doc.split('</script>', 1)[1]

def test_explorer_selection_changes_figure():
    from molkit.viz.results import toy_result
    from molkit.viz.explorer import DistributionExplorer
    r = toy_result()
    ex = DistributionExplorer(r)
    before = list(ex.figure.data[3].y)
    ex.rank.value = 1
    assert list(ex.figure.data[3].y) != before and ex.structure.value == r.select(ex.dataset.value, ex.split.value)[1]

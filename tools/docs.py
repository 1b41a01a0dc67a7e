"""Build molkit's documentation site offline into _docs/ (or --out): API pages, tutorials with their figures, and the
widgets' exported HTML.

    python tools/docs.py [--out _docs] [--no-exec]

nbdev's own `nbdev_docs` renders with Quarto; Quarto cannot be installed offline (PyPI's `quarto-cli` is a source
package whose build downloads the Quarto binary from GitHub, and neither Debian nor npm ship it), so this script
renders with nbconvert instead and needs no network at build or view time:

- API pages: every `nbs/*.ipynb` as literate source (prose, code, tests), not executed;
- tutorials: `nbs/tutorials/*.ipynb` executed (cells flagged `#| slow`, `#| cuda` or `#| eval: false` left out); plotly outputs become figures drawn
  by one local copy of plotly.js, and ipywidgets explorers are replaced by the figures they showed (read from the
  saved widget state), so the static page shows what the notebook showed;
- widgets/: each explorer of `molkit.viz` on the synthetic `toy_result`, exported with `export_html`.
"""
import argparse, html, json, os, re, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's molkit
PLOTLY = 'application/vnd.plotly.v1+json'
WIDGET = 'application/vnd.jupyter.widget-view+json'
CSS = """body{font-family:system-ui,sans-serif;margin:0;color:#222;display:flex}
nav{width:270px;min-width:270px;height:100vh;overflow:auto;position:sticky;top:0;background:#f6f7f9;padding:1em;
font-size:.88em;box-sizing:border-box}nav a{display:block;color:#2456a6;text-decoration:none;padding:.12em 0}
nav h3{margin:1em 0 .3em;font-size:1em}main{max-width:1100px;padding:1.5em 2.5em;overflow:hidden}
pre{background:#f5f5f5;padding:.6em;overflow:auto;font-size:.85em}.jp-InputArea pre{border-left:3px solid #9ab}
.jp-OutputArea pre{background:#fff;border-left:3px solid #ddd}table{border-collapse:collapse;font-size:.9em}
th,td{border:1px solid #ccc;padding:.2em .5em}.jp-InputPrompt,.jp-OutputPrompt{display:none}"""


def _cell_flags(src: str) -> set[str]:
    "nbdev flags of a cell ('#| slow', '#| hide', ...); '#| eval: false' is the flag 'no_eval'."
    flags = {m.group(1) for m in re.finditer(r'^#\|\s*(\w+)', src, re.M)}
    return flags | ({'no_eval'} if re.search(r'^#\|\s*eval:\s*false\b', src, re.M) else set())


def _widget_outputs(state: dict, model_id: str, seen=None) -> list[dict]:
    "Outputs held by the Output widgets under `model_id` (children first to last), from the saved widget state."
    seen = seen if seen is not None else set()
    if model_id in seen or model_id not in state: return []
    seen.add(model_id)
    st = state[model_id].get('state', {})
    out = list(st.get('outputs', []))
    for c in st.get('children', []):
        out += _widget_outputs(state, c.removeprefix('IPY_MODEL_'), seen)
    return out


def _plotly_div(fig: dict, n: int) -> str:
    "A div and the script drawing a plotly figure JSON with the page's plotly.js."
    return (f'<div id="plotly-{n}" class="plotly-graph-div" style="width:100%;height:{fig.get("layout", {}).get("height", 450)}px">'
            f'</div><script>Plotly.newPlot("plotly-{n}", {json.dumps(fig.get("data", []))}, '
            f'{json.dumps(fig.get("layout", {}))}, {{"responsive": true}});</script>')


def staticize(nb) -> int:
    "Replace plotly and widget outputs by static HTML (plotly divs); returns the number of figures."
    state = nb.metadata.get('widgets', {}).get('application/vnd.jupyter.widget-state+json', {}).get('state', {})
    n = 0
    for cell in nb.cells:
        if cell.cell_type != 'code': continue
        new = []
        for o in cell.get('outputs', []):
            data = o.get('data', {})
            outs = _widget_outputs(state, data[WIDGET]['model_id']) if WIDGET in data else [o]
            for x in outs:
                d = x.get('data', {})
                if PLOTLY in d:
                    new.append({'output_type': 'display_data', 'metadata': {}, 'data': {'text/html': _plotly_div(d[PLOTLY], n)}})
                    n += 1
                elif WIDGET in d and x is o:
                    new.append({'output_type': 'display_data', 'metadata': {},
                                'data': {'text/html': '<p><em>(interactive widget: run the notebook in JupyterLab)</em></p>'}})
                else: new.append(x)
        cell.outputs = [__import__('nbformat').from_dict(x) for x in new]
    return n


def execute(nb, path: Path, timeout: int = 600):
    "Run a tutorial without its slow cells, in its own folder, keeping the widget state."
    from nbclient import NotebookClient
    nb.cells = [c for c in nb.cells if not (c.cell_type == 'code' and _cell_flags(c.source) & {'slow', 'cuda', 'no_eval'})]
    env_keep = os.environ.get('PYTHONPATH', '')
    os.environ['PYTHONPATH'] = os.pathsep.join(filter(None, [str(ROOT), env_keep]))
    NotebookClient(nb, timeout=timeout, kernel_name='python3', store_widget_state=True,
                   resources={'metadata': {'path': str(path.parent)}}).execute()
    os.environ['PYTHONPATH'] = env_keep


def title_of(nb, path: Path) -> str:
    for c in nb.cells:
        if c.cell_type == 'markdown':
            m = re.search(r'^#\s+(.+)$', c.source, re.M)
            if m: return m.group(1).strip()
    return path.stem


def render(nb, title: str, nav: str, depth: int, plotly: bool) -> str:
    "One page: the notebook body (nbconvert basic template, hidden cells dropped) inside the site frame."
    from nbconvert import HTMLExporter
    nb.cells = [c for c in nb.cells if not ({'hide', 'default_exp'} & _cell_flags(c.source))]
    body, _ = HTMLExporter(template_name='basic').from_notebook_node(nb)
    up = '../' * depth
    head = f'<script src="{up}plotly.min.js"></script>' if plotly else ''
    from pygments.formatters import HtmlFormatter
    css = CSS + HtmlFormatter().get_style_defs('.highlight')
    return (f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(title)} – molkit</title>'
            f'<style>{css}</style>{head}</head><body><nav>{nav.replace("HREF:", up)}</nav><main>{body}</main></body></html>')


def widget_pages(out: Path) -> list[tuple[str, str]]:
    "Export every explorer on the synthetic toy result; (title, relative path) of each page."
    from molkit.viz.results import toy_result
    from molkit.viz.explorer import DistributionExplorer
    from molkit.viz.dashboard import ErrorDashboard
    from molkit.viz.structure import StructureViewer
    from molkit.viz.ablation import AblationViewer
    r = toy_result(n=40)
    views = [('Distribution explorer', 'distribution_explorer', DistributionExplorer(r)),
             ('Error dashboard', 'error_dashboard', ErrorDashboard(r)), ('Structure viewer', 'structure_viewer', StructureViewer(r))]
    csv = ROOT / 'benchmarks/ablation/qm9_u0_grid_summary.csv'
    if csv.exists(): views.append(('Ablation viewer', 'ablation_viewer', AblationViewer(csv)))
    pages = []
    for title, name, w in views:
        w.export_html(out / 'widgets' / f'{name}.html', f'{title} (synthetic toy result)',
                      'Exported with `export_html` from the widget; in JupyterLab the controls change these figures.')
        pages.append((title, f'widgets/{name}.html'))
    return pages


def build(out: Path, run: bool = True) -> dict:
    import nbformat
    from plotly.offline import get_plotlyjs
    t0 = time.time()
    out.mkdir(parents=True, exist_ok=True)
    (out / 'plotly.min.js').write_text(get_plotlyjs(), encoding='utf-8')
    if (ROOT / 'nbs/images').is_dir():  # images the index (README) links as nbs/images/...
        import shutil
        shutil.copytree(ROOT / 'nbs/images', out / 'nbs/images', dirs_exist_ok=True)
    api = sorted(p for p in (ROOT / 'nbs').glob('*.ipynb') if p.name != 'index.ipynb')
    tuts = sorted((ROOT / 'nbs' / 'tutorials').glob('*.ipynb'))
    nbs = {p: nbformat.read(p, 4) for p in [ROOT / 'nbs/index.ipynb', *api, *tuts]}
    link = lambda p: 'tutorials/' + p.stem + '.html' if p.parent.name == 'tutorials' else p.stem + '.html'
    wpages = widget_pages(out)
    nav = ('<a href="HREF:index.html"><b>molkit</b></a><h3>Tutorials</h3>'
           + ''.join(f'<a href="HREF:{link(p)}">{html.escape(title_of(nbs[p], p))}</a>' for p in tuts)
           + '<h3>Widgets (exported)</h3>' + ''.join(f'<a href="HREF:{h}">{t}</a>' for t, h in wpages)
           + '<h3>API</h3>' + ''.join(f'<a href="HREF:{link(p)}">{p.stem}</a>' for p in api))
    n_fig = 0
    for p, nb in nbs.items():
        tut = p.parent.name == 'tutorials'
        if tut and run: execute(nb, p)
        n = staticize(nb) if tut else 0
        n_fig += n
        dest = out / ('index.html' if p.name == 'index.ipynb' else link(p))
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(render(nb, title_of(nb, p), nav, int(tut), n > 0), encoding='utf-8')
        print(f'  {dest.relative_to(out)}' + (f' ({n} figures)' if tut else ''), flush=True)
    return {'pages': len(nbs), 'widget_pages': len(wpages), 'figures': n_fig, 'seconds': round(time.time() - t0, 1)}


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--out', default=str(ROOT / '_docs'))
    ap.add_argument('--no-exec', action='store_true', help='do not execute the tutorials')
    a = ap.parse_args()
    print(build(Path(a.out), not a.no_exec))

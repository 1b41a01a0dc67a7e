"""Real-browser test: JupyterLab headless on 127.0.0.1 with a token, driven by Playwright with the system chromium.

Opens the tutorial `nbs/tutorials/explore_results.ipynb`, runs all cells, and checks the rendered page: plotly
figures with traces and ipywidgets are displayed, moving the explorer's slider changes its figure, and the browser
console has no errors. Saves a screenshot of the distribution explorer under the test's tmp dir (and under
$MOLKIT_SCREENSHOT_DIR when set). Skips without chromium or playwright, except on CI (CI=true), where that fails.
"""
import os, shutil, socket, subprocess, sys, time, secrets, urllib.request
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = next((p for p in (shutil.which('chromium'), '/usr/bin/chromium') if p and Path(p).exists()), None)
ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync']
ON_CI = os.environ.get('CI') == 'true'

def need_browser():
    "The playwright module and the chromium binary; skip without them, fail on CI."
    try: from playwright.sync_api import sync_playwright
    except ImportError: sync_playwright = None
    missing = [n for n, ok in (('chromium', CHROMIUM), ('playwright', sync_playwright)) if not ok]
    if missing:
        msg = f"needs {' and '.join(missing)} (apt-get install chromium; pip install playwright)"
        if ON_CI: pytest.fail(msg)
        pytest.skip(msg)
    return sync_playwright

def _free_port() -> int:
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

@pytest.fixture
def lab(tmp_path):
    "A JupyterLab server on 127.0.0.1 serving tmp_path; yields (base url, token, root)."
    root = tmp_path / 'lab'; (root / 'nbs' / 'tutorials').mkdir(parents=True)
    shutil.copy(ROOT / 'nbs/tutorials/explore_results.ipynb', root / 'nbs/tutorials')
    (root / 'benchmarks').symlink_to(ROOT / 'benchmarks')
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join(filter(None, [str(ROOT), os.environ.get('PYTHONPATH')])),
           'OMP_NUM_THREADS': '1', 'JUPYTER_CONFIG_DIR': str(tmp_path / 'jcfg'), 'JUPYTER_RUNTIME_DIR': str(tmp_path / 'jrt')}
    log = open(tmp_path / 'lab.log', 'w')
    proc = subprocess.Popen([sys.executable, '-m', 'jupyterlab', '--no-browser', '--ServerApp.ip=127.0.0.1',
                             f'--ServerApp.port={port}', f'--IdentityProvider.token={token}', f'--ServerApp.root_dir={root}',
                             '--allow-root', '--LabApp.expose_app_in_browser=True', '--LabApp.news_url=None', '--LabApp.extension_manager=readonly',
                             '--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate'],
                            env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    base = f'http://127.0.0.1:{port}'
    try:
        for _ in range(120):
            try: urllib.request.urlopen(f'{base}/api/status?token={token}', timeout=2); break
            except OSError:
                if proc.poll() is not None: break
                time.sleep(0.5)
        else: pytest.fail(f'JupyterLab did not start: {(tmp_path / "lab.log").read_text()[-2000:]}')
        if proc.poll() is not None: pytest.fail(f'JupyterLab exited: {(tmp_path / "lab.log").read_text()[-2000:]}')
        yield base, token, root
    finally:
        proc.terminate()
        try: proc.wait(20)
        except subprocess.TimeoutExpired: proc.kill()
        log.close()

def _browser(p):
    return p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)

def _wait_idle(page, timeout_s: float = 240):
    "Wait until no cell shows the busy prompt [*] and every code cell has run."
    t0 = time.time()
    while time.time() - t0 < timeout_s:
        state = page.evaluate("""() => {
            const ps = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].map(e => e.textContent.trim());
            return {n: ps.length, busy: ps.filter(t => t.includes('*')).length, fresh: ps.filter(t => t === '[ ]:').length};
        }""")
        if state['n'] and not state['busy'] and not state['fresh']: return state
        time.sleep(1)
    raise AssertionError(f'cells still running after {timeout_s} s: {state}')

def _explorer_title(page) -> str:
    return page.evaluate("""() => { const t = document.querySelector('.jp-OutputArea .widget-vbox .js-plotly-plot .gtitle');
                                    return t ? t.textContent : null; }""")

def test_tutorial_in_jupyterlab(lab, tmp_path):
    sync_playwright = need_browser()
    base, token, root = lab
    errors = []
    with sync_playwright() as p:
        browser = _browser(p)
        page = browser.new_page(viewport={'width': 1400, 'height': 1000})
        page.on('console', lambda m: errors.append(f'console.{m.type}: {m.text}') if m.type == 'error' else None)
        page.on('pageerror', lambda e: errors.append(f'pageerror: {e}'))
        page.goto(f'{base}/lab/tree/nbs/tutorials/explore_results.ipynb?token={token}', timeout=120_000)
        page.wait_for_selector('.jp-Notebook .jp-Cell', timeout=120_000)
        page.wait_for_function("() => window.jupyterapp && document.querySelector('.jp-Notebook-ExecutionIndicator, .jp-Toolbar-kernelStatus, .jp-Notebook') !== null", timeout=60_000)
        page.wait_for_function("""() => { const s = document.querySelector('.jp-Notebook-ExecutionIndicator');
                                          return !s || !s.getAttribute('data-status') || s.getAttribute('data-status') === 'idle'; }""",
                               timeout=120_000)
        time.sleep(2)  # kernel handshake
        page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        _wait_idle(page)
        page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length >= 8", timeout=60_000)
        n_plots = page.evaluate("() => document.querySelectorAll('.js-plotly-plot').length")
        n_traces = page.evaluate("""() => [...document.querySelectorAll('.js-plotly-plot')].map(
                                       d => d.querySelectorAll('g.trace, g.trace.scatter, g.trace.bars, .scatterlayer .trace').length + (d.querySelector('.gl-container canvas') ? 1 : 0))""")
        assert n_plots >= 8 and all(n > 0 for n in n_traces), (n_plots, n_traces)
        n_widgets = page.evaluate("() => document.querySelectorAll('.jupyter-widgets.widget-slider, .widget-dropdown').length")
        assert n_widgets >= 5, n_widgets
        errs = page.evaluate("() => [...document.querySelectorAll('.jp-OutputArea-output[data-mime-type=\"application/vnd.jupyter.stderr\"]')].map(e => e.textContent)")
        assert not [e for e in errs if 'Error' in e or 'Traceback' in e], errs
        # the explorer: move its rank slider with the keyboard and see the figure follow
        explorer = page.locator('.jp-OutputArea .widget-vbox').first
        explorer.scroll_into_view_if_needed()
        before = _explorer_title(page)
        handle = explorer.locator('.widget-slider .noUi-handle').first
        handle.focus(); page.keyboard.press('ArrowRight'); page.keyboard.press('ArrowRight')
        page.wait_for_function("(t) => { const e = document.querySelector('.jp-OutputArea .widget-vbox .js-plotly-plot .gtitle'); return e && e.textContent !== t; }",
                               arg=before, timeout=30_000)
        after = _explorer_title(page)
        assert before and after and after != before, (before, after)
        time.sleep(1)
        shot = tmp_path / 'distribution_explorer.png'
        explorer.screenshot(path=str(shot))
        assert shot.stat().st_size > 10_000
        if os.environ.get('MOLKIT_SCREENSHOT_DIR'):
            shutil.copy(shot, Path(os.environ['MOLKIT_SCREENSHOT_DIR']) / shot.name)
        page.screenshot(path=str(tmp_path / 'lab.png'))
        browser.close()
    assert not errors, errors

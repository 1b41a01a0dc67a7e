#!/usr/bin/env bash
# Set up a fresh virtual environment and run molkit's whole CPU test suite.
#   1. fresh venv in .venv-test, install with the CPU torch pin (constraints.txt)
#   2. nbdev_export, then fail if notebooks and molkit/ are out of sync
#   3. nbdev_test (cells flagged slow / cuda are skipped)
#   4. the documentation site, offline (tools/docs.py -> _docs/; the browser tests open pages of it)
#   5. pytest, last, so its summary closes the log
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1 OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
VENV="${MOLKIT_TEST_VENV:-.venv-test}"
t0=$SECONDS
echo "== [1/5] fresh virtual environment in $VENV"
rm -rf "$VENV"
python3 -m venv "$VENV"
# shellcheck disable=SC1091
. "$VENV/bin/activate"
pip install -q --upgrade pip
pip install -q -c constraints.txt torch==2.13.0
pip install -q -c constraints.txt -e ".[dev]"
echo "   installed in $((SECONDS - t0)) s: $(python -c 'import torch, torch_geometric as g; print("torch", torch.__version__, "pyg", g.__version__)')"

# The browser tests (tests/test_browser*.py, tests/test_viz_browser.py) drive Debian's chromium with Playwright
# (pip `playwright`, a dev requirement; it never downloads a browser here). On CI install chromium when missing;
# on CI a missing browser FAILS those tests. Outside CI nothing is installed system-wide and they skip.
if [ "${CI:-}" = "true" ] && [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = "0" ]; then
  (timeout 300 apt-get update -qq && timeout 300 apt-get install -y -qq --no-install-recommends chromium >/dev/null) \
    || echo "   chromium could not be installed: the browser tests will fail"
fi

echo "== [2/5] nbdev_export and sync check"
nbdev_export
if [ -n "$(git status --porcelain -- molkit nbs)" ]; then
  echo "Notebooks and library are not in sync (run nbdev_export and commit both):"
  git status --porcelain -- molkit nbs
  git --no-pager diff --stat -- molkit nbs
  exit 1
fi

echo "== [3/5] nbdev_test (slow and cuda cells skipped)"
nbdev_test --n_workers 2 --timing

echo "== [4/5] documentation site (python tools/docs.py -> _docs/)"
t_docs=$SECONDS
python tools/docs.py --out _docs > _docs.log 2>&1 || { tail -50 _docs.log; exit 1; }
tail -1 _docs.log
echo "   built in $((SECONDS - t_docs)) s"

echo "== [5/5] pytest (2 workers)"
set +e
python -m pytest tests -m "not slow and not cuda" -q -p no:cacheprovider -n 2 --dist loadfile  # two workers, one file each
rc=$?
set -e
if [ "$rc" -eq 5 ]; then echo "pytest collected no tests; treating as success"; rc=0; fi
echo "== total $((SECONDS - t0)) s"
exit "$rc"

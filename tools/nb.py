"""Round-trip a notebook through a percent-format script, for editing notebooks from a text editor.

    python tools/nb.py to-py nbs/00_keys.ipynb /tmp/00_keys.py     # notebook -> script
    python tools/nb.py to-nb /tmp/00_keys.py nbs/00_keys.ipynb     # script -> notebook (outputs dropped)

The notebook stays the source of truth; the script is a scratch copy. Needs jupytext (a dev requirement).
"""
import hashlib, json, os, sys, tempfile
import jupytext

KERNEL = {"kernelspec": {"display_name": "python3", "language": "python", "name": "python3"}}

def _old_ids(dst: str) -> dict:
    "Cell source -> id of the notebook at `dst` (empty if there is none)."
    if not os.path.exists(dst): return {}
    return {c["source"] if isinstance(c["source"], str) else "".join(c["source"]): c.get("id")
            for c in json.load(open(dst))["cells"] if c.get("id")}

def to_nb(src: str, dst: str) -> None:
    "Write the percent-format script `src` as notebook `dst`, atomically, without jupytext metadata."
    nb = jupytext.read(src, fmt="py:percent")
    nb.metadata = dict(KERNEL)
    old = _old_ids(dst)
    for c in nb.cells:
        c.metadata = {}
        if c.cell_type == "code": c.outputs, c.execution_count = [], None
        # keep the id of an unchanged cell, else a stable one from its source: small diffs, clean merges
        c.id = old.pop(c.source, None) or hashlib.sha1(c.source.encode()).hexdigest()[:8]
    text = jupytext.writes(nb, fmt="ipynb")
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(dst)), suffix=".tmp")
    with os.fdopen(fd, "w") as f: f.write(text)
    os.replace(tmp, dst)

def to_py(src: str, dst: str) -> None:
    "Write notebook `src` as a percent-format script `dst`."
    nb = jupytext.read(src)
    nb.metadata = {}
    jupytext.write(nb, dst, fmt="py:percent")

if __name__ == "__main__":
    cmd, a, b = sys.argv[1:4]
    {"to-nb": to_nb, "to-py": to_py}[cmd](a, b)

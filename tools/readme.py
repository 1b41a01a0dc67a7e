"""Render nbs/index.ipynb into README.md without quarto (nbdev_readme needs quarto, which is not installable here).

Markdown cells are copied; code cells not marked `#| hide` become ```python blocks.
"""
import json, pathlib

def render(nb_path: str = "nbs/index.ipynb", out: str = "README.md") -> str:
    "Write `out` from the notebook at `nb_path` and return the text."
    nb = json.loads(pathlib.Path(nb_path).read_text())
    parts = ["<!-- generated from nbs/index.ipynb by tools/readme.py: edit the notebook -->"]
    for c in nb["cells"]:
        src = "".join(c["source"]).strip()
        if not src or "#| hide" in src: continue
        parts.append(src if c["cell_type"] == "markdown" else f"```python\n{src}\n```")
    text = "\n\n".join(parts) + "\n"
    pathlib.Path(out).write_text(text)
    return text

if __name__ == "__main__": render()

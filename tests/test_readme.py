"""The README's "Use it on your own model" example runs as written."""
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_own_model_example_runs(capsys):
    text = README.read_text()
    section = text.split("## Use it on your own model", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    exec(compile(code, "README.md", "exec"), {"__name__": "readme_example"})
    out = capsys.readouterr().out
    assert "mlp.0.weight" in out and "matrix  8" in out           # the report: classes and m = 512/64
    assert "matrix(m=8)" in out and "lr 0.000375  weight_decay 0.2828" in out
    assert "(0.000375, 0.282842712474619" in out                   # scale_hparams: 3e-3/8, 0.1*sqrt(8)

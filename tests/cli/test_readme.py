"""The README's "Use it on your own model" example runs as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_own_model_example_runs(capsys):
    text = README.read_text()
    section = text.split("## Use it on your own model", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    exec(compile(code, "README.md", "exec"), {"__name__": "readme_example"})
    out = capsys.readouterr().out
    assert "mlp.0.weight" in out and "matrix  8" in out  # the report: classes and m = 512/64
    assert "matrix(m=8)" in out and "lr 0.000375  weight_decay 0.2828" in out
    assert "(0.000375, 0.282842712474619" in out  # scale_hparams: 3e-3/8, 0.1*sqrt(8)


def test_readme_command_lines_match_the_cli():
    """Every option the README's command lines show exists, and every option a command has is shown."""
    import typer.main

    from lwscale.cli import app

    text = README.read_text()
    lines = [ln.strip() for block in re.findall(r"```\n(lwscale .*?)```", text, re.S) for ln in block.splitlines()]
    shown, cmd = {}, None
    for ln in lines:
        if ln.startswith("lwscale "):
            words = ln.split()
            cmd = " ".join(words[1:3]) if words[1] == "data" else words[1]
        shown.setdefault(cmd, set()).update(re.findall(r"--[a-z][a-z-]*", ln))
    root = typer.main.get_command(app)
    assert set(shown) == {"sweep", "status", "data prepare", "diagnose", "coord-check", "plot", "transfer", "report"}
    for name, flags in shown.items():
        cmd = root
        for part in name.split():
            cmd = cmd.commands[part]
        # a boolean pair (--relative/--absolute) is shown by either of its names
        names = [{o for o in (*p.opts, *getattr(p, "secondary_opts", ())) if o.startswith("--")} for p in cmd.params]
        real = set().union(*names)
        assert flags <= real, (name, flags - real)
        assert all(n & flags for n in names if n), (name, [n for n in names if n and not n & flags])


def test_quickstart_config_shows_every_spec_key():
    """README and the other configs send users to configs/quickstart.yaml for every key."""
    from pydantic import BaseModel

    from lwscale.sweep.spec import Spec

    text = (README.parent / "configs" / "quickstart.yaml").read_text()

    def keys(model):
        for name, field in model.model_fields.items():
            yield name
            if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
                yield from keys(field.annotation)

    missing = [k for k in keys(Spec) if not re.search(rf"[\s{{,]{k}:", text)]
    assert missing == []


def test_help_of_every_command_is_plain_and_names_the_choices():
    """No type placeholder after a flag (<bool>, BOOLEAN), plain usage lines (SPEC, [RUN_DIR]; not
    {SPEC} or [[RUN_DIR]]), and the words an option takes shown in its help."""
    import typer.main
    from conftest import run_cli

    from lwscale.cli import app

    def commands(cmd, path=()):
        yield path
        for name, sub in getattr(cmd, "commands", {}).items():
            yield from commands(sub, (*path, name))

    choices = {
        ("sweep",): ["local|gpus|slurm", "auto|cpu|cuda|cuda:N"],
        ("data", "prepare"): ["auto|text|jsonl|parquet"],
    }
    seen = []
    for path in commands(typer.main.get_command(app)):
        code, out, err = run_cli([*path, "--help"], env={"COLUMNS": "200"})
        assert code == 0, (path, err)
        assert "<bool>" not in out and "BOOLEAN" not in out.upper(), (path, out)
        usage = next(line for line in out.splitlines() if "Usage:" in line)
        assert "{" not in usage and "[[" not in usage and "]]" not in usage, (path, usage)
        for word in choices.get(path, []):
            assert word in out, (path, word)
        seen.append(path)
    assert {("sweep",), ("status",), ("transfer",), ("report",), ("data", "prepare"), ()} <= set(seen)
    code, out, _ = run_cli(["sweep", "--help"], env={"COLUMNS": "200"})
    assert re.search(r" sweep \[OPTIONS\] SPEC \[KEY=VALUE\]\.\.\. *$", out, re.M), out
    code, out, _ = run_cli(["status", "--help"], env={"COLUMNS": "200"})
    assert re.search(r" status \[OPTIONS\] \[RUN_DIR\] *$", out, re.M), out

"""`memsweep prune`: the measurement files a sweep no longer plans are listed, and with
--delete removed with their sidecars and emptied folders; the current sweep's are kept."""

from __future__ import annotations

import yaml

from memsweep.cli import main
from memsweep.plan import config, sweep

CONFIG = {
    "sweep": {
        "backend": ["lean"],
        "storage": ["dense"],
        "dtype": ["float64"],
        "grid": [3, 4],
        "agents": [1],
        "sharing": ["shared"],
        "policy_len": [1],
    },
    "model": {"steps": 3, "repeats": 1},
}


def _tree(folder):
    """Files for grids 3, 4 (planned) and 5 (a grid a former config had), a cap sidecar."""
    path = folder / "sweep.yaml"
    wider = {**CONFIG, "sweep": {**CONFIG["sweep"], "grid": [3, 4, 5]}}
    for planned in sweep.plan(config.check(wider)):
        target = folder / planned.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"PAR1")
    old = next(p for p in (folder / "results").rglob("*.parquet") if "grid=5" in str(p))
    (old.parent / f".{old.name}.cap.json").write_text("{}")
    path.write_text(yaml.safe_dump(CONFIG))
    return path, old


def test_prune_lists_what_the_sweep_does_not_plan_and_keeps_it(tmp_path, capsys):
    path, old = _tree(tmp_path)
    assert main(["prune", str(path), "--directory", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert str(old) in out and "grid=3" not in out and "grid=4" not in out
    assert "1 measurement file(s)" in out
    assert old.exists()


def test_prune_delete_removes_the_file_its_sidecar_and_empty_folders(tmp_path, capsys):
    path, old = _tree(tmp_path)
    assert main(["prune", str(path), "--directory", str(tmp_path), "--delete"]) == 0
    assert "removed 1 measurement file(s) (2 paths" in capsys.readouterr().out
    tree = tmp_path / sweep.MEASUREMENTS
    left = sorted(p.relative_to(tree).as_posix() for p in tree.rglob("*") if p.is_file())
    assert len(left) == 2 and all("grid=5" not in name for name in left)
    assert not any("grid=5" in str(p) for p in tree.rglob("*"))  # its folders went too
    assert main(["prune", str(path), "--directory", str(tmp_path)]) == 0
    assert "every measurement file belongs to the sweep" in capsys.readouterr().out


def test_prune_refuses_a_bad_config_and_touches_nothing(tmp_path, capsys):
    _, old = _tree(tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"sweep": {**CONFIG["sweep"], "grid": [1]}}))
    assert main(["prune", str(bad), "--directory", str(tmp_path), "--delete"]) == 2
    err = capsys.readouterr().err
    assert "sweep.grid[0]: 1 is less than the minimum of 2" in err
    assert old.exists()

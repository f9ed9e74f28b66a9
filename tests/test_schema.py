"""The measurement table: validation, atomic writes, Hive folders, readers without project code."""

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from memsweep.results import schema
from memsweep.results.schema import SchemaError


def row(**overrides) -> dict:
    base = {
        "config_id": "abc123",
        "backend": "x",
        "storage": "dense",
        "dtype": "float64",
        "grid": 5,
        "states": 25,
        "agents": 2,
        "sharing": "private",
        "policy_len": 1,
        "obs_noise": 0.1,
        "noise_kind": "local",
        "move_success": 0.9,
        "steps": 20,
        "repeats": 3,
        "seed": 0,
        "layout": "objects",
        "repeat": None,
        "step": None,
        "phase": "model",
        "operation": "A",
        "metric": "bytes",
        "probe": "nbytes",
        "value": 5000.0,
        "unit": "B",
        "status": "ok",
        "reason": None,
    }
    return {**base, **overrides}


def table(**overrides) -> pa.Table:
    return schema.to_table(
        [row(**overrides), row(**{**overrides, "operation": "B", "value": 25000.0})]
    )


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_to_table_gives_the_canonical_schema():
    t = table()
    assert t.schema == schema.MEASUREMENT_SCHEMA
    assert t.num_rows == 2
    assert t.column("hostname").null_count == 2  # columns left out of the rows are null
    assert schema.validate(t).equals(t)


def test_to_table_rejects_unknown_columns():
    with pytest.raises(SchemaError, match="unknown measurement columns.*colour"):
        schema.to_table([row(colour="red")])


def test_validate_rejects_missing_columns():
    with pytest.raises(SchemaError, match=r"missing columns \['probe'\]"):
        schema.validate(table().drop_columns(["probe"]))


def test_validate_rejects_unknown_phases():
    with pytest.raises(SchemaError, match="unknown phase values.*warmup"):
        schema.validate(table(phase="warmup"))


def test_validate_rejects_unknown_units():
    with pytest.raises(SchemaError, match="unknown unit values.*MB"):
        schema.validate(table(unit="MB"))


def test_every_registered_probe_writes_a_known_unit():
    from memsweep.harness import probes

    assert {probe.unit for probe in probes.REGISTRY.values()} <= set(schema.UNITS)


@pytest.mark.parametrize("column", ["probe", "phase", "metric", "unit", "status"])
def test_validate_rejects_null_required_values(column):
    with pytest.raises(SchemaError, match=column):
        schema.validate(table(**{column: None}))


def test_validate_casts_compatible_types_and_refuses_incompatible_ones():
    t = table()
    as_int32 = t.set_column(
        t.schema.get_field_index("grid"), "grid", t.column("grid").cast(pa.int32())
    )
    assert schema.validate(as_int32).schema == schema.MEASUREMENT_SCHEMA
    words = t.set_column(t.schema.get_field_index("grid"), "grid", pa.array(["five", "five"]))
    with pytest.raises(SchemaError, match="column 'grid': .*five"):
        schema.validate(words)


def test_write_and_read_round_trip(tmp_path):
    path = schema.write_measurements(table(), tmp_path / "plain.parquet")
    assert path.exists()
    assert leftovers(tmp_path) == []
    assert schema.read_measurements(path).equals(table())


def test_an_invalid_table_writes_nothing(tmp_path):
    out = tmp_path / "bad.parquet"
    with pytest.raises(SchemaError):
        schema.write_measurements(table(phase="warmup"), out)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_an_empty_table_is_not_a_measurement(tmp_path):
    out = tmp_path / "empty.parquet"
    with pytest.raises(SchemaError, match="no rows"):
        schema.write_measurements(schema.MEASUREMENT_SCHEMA.empty_table(), out)
    assert list(tmp_path.iterdir()) == []
    pq.write_table(schema.MEASUREMENT_SCHEMA.empty_table(), out)
    with pytest.raises(SchemaError, match="no rows"):
        schema.read_file(out)


def test_a_failed_write_leaves_no_temporary_file(tmp_path):
    out = tmp_path / "taken.parquet"
    out.mkdir()  # the final name is a folder with something in it: the rename must fail
    (out / "keep").write_text("x")
    with pytest.raises(OSError):
        schema.write_measurements(table(), out)
    assert out.is_dir()
    assert leftovers(tmp_path) == []


def test_an_existing_file_is_replaced_whole(tmp_path):
    out = tmp_path / "m.parquet"
    schema.write_measurements(table(value=1.0), out)
    schema.write_measurements(table(value=2.0), out)
    assert schema.read_measurements(out).column("value").to_pylist() == [2.0, 25000.0]
    assert leftovers(tmp_path) == []


HIVE = "backend=x/storage=dense/grid=5/policy_len=1.parquet"


def test_hive_parts_are_folders_only():
    assert schema.hive_parts("tmp/" + HIVE) == {"backend": "x", "storage": "dense", "grid": "5"}


def test_hive_folder_columns_are_left_out_of_the_file(tmp_path):
    out = schema.write_measurements(table(), tmp_path / HIVE)
    names = pq.read_table(out).column_names
    assert not {"backend", "storage", "grid"} & set(names)
    assert "policy_len" in names  # the file name is not a folder: the column stays
    back = schema.read_measurements(out)
    assert back.schema == schema.MEASUREMENT_SCHEMA
    assert back.column("grid").to_pylist() == [5, 5]
    assert back.column("backend").to_pylist() == ["x", "x"]
    assert back.equals(table())


def test_path_columns_types_what_a_path_names():
    columns = schema.path_columns("r/backend=x/grid=5/obs_noise=0.2/policy_len=2.parquet")
    assert columns == {"backend": "x", "grid": 5, "obs_noise": 0.2, "policy_len": 2}
    assert schema.path_columns("r/grid=big/m.parquet") == {"grid": "big"}


def test_a_column_that_disagrees_with_its_folder_is_refused(tmp_path):
    out = tmp_path / HIVE
    with pytest.raises(SchemaError, match="folder says grid=5"):
        schema.write_measurements(table(grid=6, states=36), out)
    assert not out.exists()
    assert not list(tmp_path.rglob("*.parquet*"))


def write_tree(root):
    for backend, grid in [("x", 5), ("x", 6), ("y", 5)]:
        path = root / f"backend={backend}/storage=dense/grid={grid}/policy_len=1.parquet"
        schema.write_measurements(table(backend=backend, grid=grid, states=grid * grid), path)


def test_read_measurements_reads_a_whole_tree(tmp_path):
    write_tree(tmp_path)
    (tmp_path / "backend=x" / ".unfinished.parquet").write_bytes(b"not parquet")  # skipped
    everything = schema.read_measurements(tmp_path)
    assert everything.schema == schema.MEASUREMENT_SCHEMA
    assert everything.num_rows == 6
    pairs = set(zip(everything["backend"].to_pylist(), everything["grid"].to_pylist(), strict=True))
    assert pairs == {("x", 5), ("x", 6), ("y", 5)}


def test_read_measurements_of_an_empty_tree_is_an_empty_table(tmp_path):
    empty = schema.read_measurements(tmp_path)
    assert empty.num_rows == 0 and empty.schema == schema.MEASUREMENT_SCHEMA


def test_read_measurements_refuses_a_broken_file(tmp_path):
    write_tree(tmp_path)
    (tmp_path / "backend=x" / "broken.parquet").write_bytes(b"not parquet")
    with pytest.raises(SchemaError, match="broken.parquet"):
        schema.read_measurements(tmp_path)


def test_the_tree_reads_with_plain_pandas(tmp_path):
    root = tmp_path / "tmp"
    write_tree(root)
    frame = pd.read_parquet(root)
    assert len(frame) == 6
    assert {"backend", "storage", "grid", "policy_len"} <= set(frame.columns)
    seen = set(zip(frame.backend.astype(str), frame.grid.astype(int), strict=True))
    assert seen == {("x", 5), ("x", 6), ("y", 5)}
    assert set(frame.storage.astype(str)) == {"dense"}
    assert set(frame.policy_len) == {1}


def test_the_tree_reads_with_a_hive_pyarrow_dataset(tmp_path):
    root = tmp_path / "tmp"
    write_tree(root)
    dataset = ds.dataset(root, format="parquet", partitioning="hive")
    assert {"backend", "storage", "grid", "policy_len"} <= set(dataset.schema.names)
    got = dataset.to_table()
    assert got.num_rows == 6
    five = dataset.to_table(filter=ds.field("grid") == 5)
    assert sorted(five.column("backend").to_pylist()) == ["x", "x", "y", "y"]


# Null, not -1; the same pandas types however the rows are read ---------------------------


def test_repeat_and_step_are_null_where_no_one_applies_and_never_negative():
    t = table()
    assert t.column("repeat").null_count == t.column("step").null_count == 2
    assert schema.validate(table(repeat=0, step=3)).column("step").to_pylist() == [3, 3]
    for column in ("repeat", "step"):
        with pytest.raises(SchemaError, match=rf"column '{column}' holds -1: .*null"):
            schema.validate(table(**{column: -1}))


def test_every_way_of_reading_gives_the_same_frame(tmp_path):
    root = tmp_path / "tree"
    write_tree(root)
    schema.write_measurements(schema.read_measurements(root), tmp_path / "measurements.parquet")
    from_tree = schema.read_frame(root)
    ways = {
        "one file": schema.read_frame(tmp_path / "measurements.parquet"),
        "pandas, tree": schema.to_frame(pd.read_parquet(root)),  # categorical folders
        "pyarrow, tree": schema.to_frame(ds.dataset(root, partitioning="hive").to_table()),
    }
    assert from_tree.columns.tolist() == schema.COLUMNS
    for way, frame in ways.items():
        assert frame.dtypes.equals(from_tree.dtypes), way
        key = ["backend", "grid", "operation"]
        pd.testing.assert_frame_equal(
            frame.sort_values(key, ignore_index=True), from_tree.sort_values(key, ignore_index=True)
        )
    assert str(from_tree.dtypes["step"]) == str(from_tree.dtypes["repeat"]) == "Int64"
    assert from_tree.dtypes["grid"] == "int64" and from_tree.step.isna().all()


def test_plain_pandas_reads_repeat_and_step_as_nullable_integers(tmp_path):
    out = schema.write_measurements(table(repeat=1, step=None), tmp_path / "m.parquet")
    frame = pd.read_parquet(out)
    assert {str(frame.dtypes[c]) for c in ("repeat", "step")} == {"Int64"}
    assert frame.repeat.tolist() == [1, 1] and frame.step.isna().all()

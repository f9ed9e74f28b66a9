"""Storage formats and dtypes: exact byte accounting, zero fraction, normalisation, refusals."""

import itertools

import numpy as np
import pytest
import scipy.sparse as sp

from memsweep.world import storage as st
from memsweep.world.gridworld import GridWorld, observation_matrix, transition_matrices

SUPPORTED = [
    (fmt, dtype)
    for fmt, dtype in itertools.product(st.FORMATS, st.DTYPES)
    if not (fmt != "dense" and dtype == "float16")
]
SPARSE = [fmt for fmt in st.FORMATS if fmt != "dense"]

# 3×4, five non-zero entries: 7 of 12 entries are zero; every column has a non-zero.
KNOWN = np.array(
    [
        [0.5, 0.0, 0.0, 2.0],
        [0.0, 0.0, 1.0, 0.0],
        [0.5, 3.0, 0.0, 0.0],
    ]
)


def models(noise_kind: str):
    world = GridWorld(grid=5, obs_noise=0.2, noise_kind=noise_kind, move_success=0.8)
    return [observation_matrix(world), *transition_matrices(world)]


@pytest.mark.parametrize(("fmt", "dtype"), SUPPORTED)
@pytest.mark.parametrize("noise_kind", ["local", "uniform"])
def test_exact_bytes_counted_independently(fmt, dtype, noise_kind):
    itemsize = np.dtype(dtype).itemsize
    for matrix in models(noise_kind):
        stored = st.store(matrix, fmt, dtype, normalize=True)
        n = matrix.shape[0]
        if fmt == "dense":
            assert isinstance(stored, np.ndarray) and stored.dtype == np.dtype(dtype)
            assert st.nbytes(stored) == n * n * itemsize
            continue
        assert sp.issparse(stored) and stored.format == fmt
        assert stored.dtype == np.dtype(dtype)
        nnz = np.count_nonzero(matrix.toarray() if sp.issparse(matrix) else matrix)
        assert stored.nnz == nnz

        def size(array):
            return array.size * array.dtype.itemsize

        if fmt == "coo":
            expected = size(stored.data) + size(stored.row) + size(stored.col)
            by_hand = nnz * itemsize + 2 * nnz * stored.row.dtype.itemsize
        else:
            expected = size(stored.data) + size(stored.indices) + size(stored.indptr)
            by_hand = (
                nnz * (itemsize + stored.indices.dtype.itemsize)
                + (n + 1) * stored.indptr.dtype.itemsize
            )
        assert st.nbytes(stored) == expected == by_hand


@pytest.mark.parametrize(("fmt", "dtype"), SUPPORTED)
def test_zero_fraction_of_a_known_matrix(fmt, dtype):
    stored = st.store(KNOWN, fmt, dtype)
    assert st.zero_fraction(stored) == pytest.approx(7 / 12)


def test_zero_fraction_counts_logical_entries_of_a_model():
    a = observation_matrix(GridWorld(grid=3, obs_noise=0.1))  # 9 states, 9 + 24 non-zeros
    assert st.zero_fraction(a) == pytest.approx(1 - 33 / 81)
    assert st.zero_fraction(st.store(a, "dense", "float32")) == pytest.approx(1 - 33 / 81)


@pytest.mark.parametrize(("fmt", "dtype"), SUPPORTED)
@pytest.mark.parametrize("noise_kind", ["local", "uniform"])
def test_normalised_columns_sum_to_one_in_the_dtype(fmt, dtype, noise_kind):
    eps = np.finfo(dtype).eps
    for matrix in models(noise_kind):
        # Scale columns unevenly so that normalising has work to do.
        scaled = (matrix.toarray() if sp.issparse(matrix) else matrix) * np.arange(1, 26)
        stored = st.store(scaled, fmt, dtype, normalize=True)
        values = stored.toarray() if sp.issparse(stored) else stored
        assert values.dtype == np.dtype(dtype)
        per_column = np.count_nonzero(values, axis=0)
        # Summation of n values in the dtype is exact to n × eps at worst.
        error = np.abs(values.sum(axis=0, dtype=dtype).astype(np.float64) - 1.0)
        assert np.all(error <= per_column * eps), (error.max() / eps, per_column.max())


def test_normalising_does_not_change_the_input():
    matrix = sp.csc_array(KNOWN)
    copy = matrix.copy()
    for fmt in st.FORMATS:
        st.store(matrix, fmt, "float64", normalize=True)
    np.testing.assert_array_equal(matrix.toarray(), copy.toarray())
    dense = KNOWN.copy()
    st.store(dense, "dense", "float64", normalize=True)
    np.testing.assert_array_equal(dense, KNOWN)


@pytest.mark.parametrize("fmt", st.FORMATS)
def test_an_all_zero_column_cannot_be_normalised(fmt):
    matrix = KNOWN.copy()
    matrix[:, 2] = 0.0
    with pytest.raises(ValueError, match="all-zero column"):
        st.store(matrix, fmt, "float64", normalize=True)


@pytest.mark.parametrize("dtype", st.DTYPES)
def test_dense_is_c_ordered_whatever_the_input(dtype):
    # A CSC matrix's toarray() is Fortran-ordered; the stored model must not inherit that.
    stored = st.store(sp.csc_array(KNOWN), "dense", dtype, normalize=True)
    assert stored.flags["C_CONTIGUOUS"]


@pytest.mark.parametrize("fmt", SPARSE)
def test_sparse_float16_is_refused_naming_scipy(fmt):
    with pytest.raises(st.UnsupportedStorage, match="scipy") as error:
        st.store(KNOWN, fmt, "float16")
    assert "float16" in str(error.value)
    assert st.unsupported_reason(fmt, "float16") == str(error.value)


def test_dense_float16_is_supported():
    assert st.unsupported_reason("dense", "float16") is None
    assert st.store(KNOWN, "dense", "float16").dtype == np.float16


@pytest.mark.parametrize(
    ("fmt", "dtype", "named"),
    [("ell", "float64", "ell"), ("dense", "int8", "int8"), ("csr", "bfloat16", "bfloat16")],
)
def test_unknown_format_or_dtype_is_refused(fmt, dtype, named):
    with pytest.raises(st.UnsupportedStorage, match=named):
        st.store(KNOWN, fmt, dtype)
    assert named in st.unsupported_reason(fmt, dtype)


def test_unsupported_storage_is_a_value_error():
    assert issubclass(st.UnsupportedStorage, ValueError)


def test_sparse_limit_bytes_by_hand():
    # 5 non-zeros; CSR: 5 × (4 + 4) + (3 rows + 1) × 4 = 56; CSC: 5 × 8 + (4 cols + 1) × 4 = 60;
    # COO: 5 × (4 + 2 × 4) = 60. In float64 the values cost 8: CSR 5 × 12 + 16 = 76.
    assert st.sparse_limit_bytes(KNOWN, "csr", "float32") == 56
    assert st.sparse_limit_bytes(KNOWN, "csc", "float32") == 60
    assert st.sparse_limit_bytes(KNOWN, "coo", "float32") == 60
    assert st.sparse_limit_bytes(KNOWN, "csr", "float64") == 76
    assert st.sparse_limit_bytes(sp.csr_array(KNOWN), "csr", "float32") == 56
    # The formula the plan predicts a model's size with: dense holds every entry.
    assert st.stored_bytes(KNOWN.shape, 5, "dense", "float32") == 12 * 4
    assert st.stored_bytes(KNOWN.shape, 5, "csr", "float32") == 56


@pytest.mark.parametrize(("fmt", "dtype"), [(f, d) for f, d in SUPPORTED if f != "dense"])
def test_stored_sparse_matrices_reach_the_limit(fmt, dtype):
    # scipy's canonical form with int32 indices is exactly the limit: nothing is wasted.
    a = observation_matrix(GridWorld(grid=6))
    assert st.nbytes(st.store(a, fmt, dtype)) == st.sparse_limit_bytes(a, fmt, dtype)


@pytest.mark.parametrize("fmt", SPARSE)
def test_bytes_do_not_depend_on_how_the_matrix_was_built(fmt):
    # models.py builds from Python lists (scipy keeps int64 indices then); a dense input
    # gets int32. Both are the same matrix and must cost the same.
    from_lists = observation_matrix(GridWorld(grid=6))
    from_dense = from_lists.toarray()
    a, b = st.store(from_lists, fmt, "float32"), st.store(from_dense, fmt, "float32")
    assert st.nbytes(a) == st.nbytes(b)

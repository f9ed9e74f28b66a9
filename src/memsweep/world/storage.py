"""Matrices in a storage format and dtype, with exact byte accounting.

``store`` turns a float64 matrix (dense or sparse; a dense array of more axes is
stored sparse as its 2-D unfolding) into ``dense``/``csr``/
``csc``/``coo`` in ``float64``/``float32``/``float16``, normalising columns in
that dtype so every backend's normalisation check sees sums computed the way
it computes them. ``nbytes`` counts what the matrix holds: for dense its
buffer; for sparse the data, index and index-pointer arrays.
"""

from __future__ import annotations

import numpy as np

FORMATS = ("dense", "csr", "csc", "coo")
DTYPES = ("float64", "float32", "float16")
_ITEMSIZE = {dtype: np.dtype(dtype).itemsize for dtype in DTYPES}  # (asked once a job a plan)
# The index type ``store`` gives sparse matrices wherever it fits, and its bytes.
INDEX_DTYPE = np.int32
INDEX_BYTES = np.dtype(INDEX_DTYPE).itemsize


class UnsupportedStorage(ValueError):
    """A storage/dtype combination that cannot work; ``str()`` is the reason."""


def unsupported_reason(fmt: str, dtype: str) -> str | None:
    """Why ``fmt`` cannot hold ``dtype``, or None where it can."""
    if fmt not in FORMATS:
        return f"unknown storage {fmt!r}; known: {', '.join(FORMATS)}"
    if dtype not in DTYPES:
        return f"unknown dtype {dtype!r}; known: {', '.join(DTYPES)}"
    if fmt != "dense" and dtype == "float16":
        return f"scipy.sparse cannot hold float16 ({fmt} supports float32/float64 only)"
    return None


def store(matrix, fmt: str, dtype: str, normalize: bool = False):
    """``matrix`` in ``fmt`` and ``dtype``; with ``normalize``, columns sum to 1 in ``dtype``."""
    import scipy.sparse as sp  # here, not at the top: planning a sweep needs no scipy

    reason = unsupported_reason(fmt, dtype)
    if reason:
        raise UnsupportedStorage(reason)
    kind = np.dtype(dtype)
    if fmt == "dense":
        dense = matrix.toarray() if sp.issparse(matrix) else np.asarray(matrix)
        # Always C order: a CSC matrix's toarray() is Fortran-ordered, and a backend that
        # copies it (``.copy()`` is C order) would then sum in another order than one that
        # shares it, so shared and private agents would not compute bit-identical beliefs.
        dense = np.array(dense, dtype=kind, order="C", copy=True)
        if normalize:
            sums = dense.sum(axis=0, dtype=kind, keepdims=True)
            if (sums == 0).any():
                raise ValueError("cannot normalise a matrix with an all-zero column")
            dense /= sums
        return dense
    if not sp.issparse(matrix) and np.ndim(matrix) > 2:
        # An array of more axes (A[m] of a modality that sees several factors) is stored as
        # its (rows, every other axis) unfolding: columns stay columns.
        matrix = np.reshape(matrix, (np.shape(matrix)[0], -1))
    stored = sp.csc_array(matrix).astype(kind)
    stored.sum_duplicates()
    stored.eliminate_zeros()
    # The narrowest index type that fits, whatever the input had: scipy keeps the int64
    # indices of a matrix built from Python lists (as models.py builds them) but gives
    # int32 to one converted from dense, so the same matrix would cost different bytes.
    if max(*stored.shape, stored.nnz) <= np.iinfo(INDEX_DTYPE).max:
        stored.indices = stored.indices.astype(INDEX_DTYPE)
        stored.indptr = stored.indptr.astype(INDEX_DTYPE)
    if normalize:
        # In CSC each column's entries are contiguous: sum and scale them in place.
        counts = np.diff(stored.indptr)
        if (counts == 0).any():
            raise ValueError("cannot normalise a matrix with an all-zero column")
        sums = np.add.reduceat(stored.data, stored.indptr[:-1])
        stored.data /= np.repeat(sums, counts)
    return {"csr": sp.csr_array, "csc": sp.csc_array, "coo": sp.coo_array}[fmt](stored)


def is_sparse(matrix) -> bool:
    """Whether ``matrix`` is a scipy sparse array, without importing scipy."""
    return hasattr(matrix, "format") and hasattr(matrix, "nnz")


def nbytes(matrix) -> int:
    """Exact bytes a matrix holds: buffer for dense; data + indices + pointers for sparse."""
    if is_sparse(matrix):
        if matrix.format == "coo":
            return matrix.data.nbytes + sum(index.nbytes for index in matrix.coords)
        return matrix.data.nbytes + matrix.indices.nbytes + matrix.indptr.nbytes
    return np.asarray(matrix).nbytes


def zero_fraction(matrix) -> float:
    """Fraction of the matrix's logical entries that are zero."""
    size = int(np.prod(matrix.shape))
    if is_sparse(matrix):
        return 1.0 - np.count_nonzero(matrix.data) / size
    return 1.0 - np.count_nonzero(matrix) / size


def stored_bytes(shape: tuple[int, int], nnz: int, fmt: str, dtype: str) -> int:
    """Bytes ``fmt`` holds a ``shape`` matrix of ``nnz`` non-zeros in, as :func:`store` keeps it.

    Dense: every entry. Sparse: nnz × (value + index) + pointers (CSR: one per row and one
    more; CSC: per column), with int32 indices (what ``store`` gives a matrix that fits);
    COO keeps two indices an entry and no pointers. The plan predicts a model's size with
    it; :func:`nbytes` counts the same bytes of a real matrix.
    """
    value = _ITEMSIZE.get(dtype) or np.dtype(dtype).itemsize
    if fmt == "dense":
        return shape[0] * shape[1] * value
    if fmt == "coo":
        return nnz * (value + 2 * INDEX_BYTES)
    pointers = (shape[0 if fmt == "csr" else 1] + 1) * INDEX_BYTES
    return nnz * (value + INDEX_BYTES) + pointers


def sparse_limit_bytes(matrix, fmt: str = "csr", dtype: str = "float32") -> int:
    """The fewest bytes ``fmt`` can hold ``matrix`` in: its non-zeros only, int32 indices."""
    nnz = matrix.nnz if is_sparse(matrix) else int(np.count_nonzero(matrix))
    return stored_bytes(matrix.shape, nnz, fmt, dtype)

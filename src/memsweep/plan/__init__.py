"""Config -> jobs: check a sweep config, name each configuration, plan and predict it.

Runs at Snakemake parse time: it imports no PyMDP, JAX, scipy or pandas.
"""

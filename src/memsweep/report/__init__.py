"""The hotspot report, one job per module, lowest first:

- ``queries``: selectors, rows and one figure per configuration from the tidy table;
- ``consumers``: the memory holders, each probe's metric from the probe registry;
- ``fits``: scaling exponents; ``fixes``: one-axis variants and their savings;
- ``hotspots``: the ranking; ``claims``: the seed study's claims with verdicts;
- ``prediction``, ``pareto``: the plan against the measurements, precision against memory;
- ``figures`` (drawn with ``plotting``): the registered figures and their captions;
- ``text``, ``sections``, ``detail``: the prose, and one function per section, in order;
- ``document``, ``formats``, ``markdown``, ``page``: the sections as data, rendered;
- ``build``: tables in, report files out.
"""

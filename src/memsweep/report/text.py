"""The report's prose: one template per paragraph, filled in by :mod:`sections`.

Placeholders name what a section computes; nothing here reads data. Editing the
wording of the report is editing this file only.
"""

TITLE = "Memory hotspots of PyMDP agents"
TOP = 5  # hotspots described in full; the ranking table lists every one

SUMMARY = (
    "{measured} configurations measured of {planned} planned ({planned_out} planned out, "
    "{failed} failed), {rows} measurement rows. Backends: {backends}."
)
HOW_TO_READ = (
    "How to read it. Each probe ranks the consumers on its own and figures of different "
    "probes are never compared. What each probe sees: {sees} "
    "Ranking probes in this run: {ranking}. A hotspot's rank is its best rank under any "
    "probe (ties: the one more probes rank there first). A consumer ranks under a probe "
    "only if its worst figure is at least {rank_share:.0%} of that probe's largest. "
    "Figures are medians over steps and repeats of one configuration; 'worst' is the "
    "configuration where the median is largest. A fix is a measured configuration one axis "
    "away ({fix_axes}) from the worst one; its savings compare the two configurations under "
    "one probe. A saving above 100 % means the variant's figure is negative: it released "
    "memory that the worst configuration kept."
)
PROBE_SEES = "{name}: {sees}."
TOP_ITEM = "{what} — {value} [{probe}] in {config_id}"
TOP_FIX = "; fix {fix} saves {share}"

RANKING = (
    "One row per hotspot: its worst figure under each probe that measured it, its rank "
    "under each probe, its scaling and its best one-axis fix."
)
TOP_TITLE = "The top {count} hotspots in detail"
SEED_CLAIMS = (
    "Every quantitative claim of the hand-made seed study beside our figure for the closest "
    "comparable configuration (claims, selections and tolerance rules: "
    "memsweep/report/data/seed_claims.yaml). 'spread' is our figure over every qualifying "
    "configuration."
)
SCALING = (
    "Exponents of log-log least-squares fits, per backend, storage, dtype and sharing; in N "
    "with one intercept per agent count, in agents with one per grid; 95 % confidence "
    "intervals from the t distribution. Values ≤ 0 have no logarithm and are left out "
    "(column nonpositive)."
)
PREDICTION = (
    "The plan predicts each job's peak resident memory (sweep.predict_mb). The comparable "
    "measured quantity is what the job added to its interpreter: the import plus the peak "
    "above the post-import baseline ({footprint}). It leaves out the interpreter's own pages "
    "before the import, which the prediction's import term holds; the second comparison "
    "therefore sets the import aside on both sides: the prediction less its import term "
    "against the measured VmHWM peak above the post-import baseline."
)
NO_PREDICTION = "No measured job to compare."
PARETO = "The Pareto front: no other configuration is both smaller and as precise."
ALL_MEASURED = "Every planned configuration was measured."
FAILURES = (
    "Planned out (unsupported by the backend, over the memory budget), failed while "
    "running, or written but unreadable (invalid), with the reason the plan, the "
    "supervisor or the aggregate gave."
)
FAILED_ONE_BY_ONE = "Failed jobs and unreadable files, one by one:"
CALIBRATION = "Each probe against allocations of known size (numpy arrays, every page written)."

# One hotspot in detail.
NO_FIX = "no measured one-axis variant saves ≥ {share:.0%} under {probe}"
NOT_IN_BOTH = "not measured in both configurations"
SCALING_ITEM = (
    "N^{n}, agents^{agents} [{probe}, {configs} configurations with the worst one's "
    "{setting}]: {n_reading}; {agents_reading}"
)
GROWTH_SHAPE = (
    "{probe} levels of {config_id}, steps {first}–{last}: net {net}, largest single step {largest}"
)
GROWTH_JUMP = (
    "; one step holds most of it: a jump, not steady growth, so the per-100-steps slope "
    "extrapolates that jump"
)

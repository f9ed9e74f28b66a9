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
    "A peak is the maximum over the steps and repeats of one configuration, any other "
    "figure their median; 'worst' is the configuration where that figure is largest. "
    "A fix is a measured configuration one axis "
    "away ({fix_axes}) from the worst one; its savings compare the two configurations under "
    "one probe. A saving above 100 % means the variant's figure is negative: it released "
    "memory that the worst configuration kept. Every job ran in a process of its own, on "
    "one BLAS and XLA thread, under the allocator settings its rows name "
    "(malloc_arena_max, malloc_mmap_threshold). Unless a configuration's name says "
    "otherwise, glibc's mmap threshold was fixed at 128 KiB (MALLOC_MMAP_THRESHOLD_): "
    "glibc's own threshold rises as large blocks are freed and then keeps such blocks in "
    "the heap, which changes a JAX job's peak from one identical process to the next."
)
PROBE_SEES = "{name}: {sees}."
TOP_ITEM = "{what} — {value} [{probe}], rank {rank} under {probe}, in {label} ({config_id})"
TOP_FIX = "; fix {fix} saves {share} of it"
TOP_FIX_WHOLE = " ({whole} of the whole footprint [vmhwm])"

RANKING = (
    "One table per ranking probe: the hotspots that probe ranks, ordered by that probe's "
    "worst figure only (figures of different probes are never ranked together), with "
    "the configuration where it is largest, its scaling and its best one-axis fix under "
    "the same probe."
)
RANKING_OVERVIEW = (
    "Every hotspot first, in the catalogue's order: its worst figure under each probe "
    "side by side (not ranked against each other) and its rank under each probe."
)
RANKED_UNDER = "Ranked by {probe}"
NOT_RANKED = "{probe} ranks no hotspot in this sweep."
TOP_TITLE = "The top {count} hotspots in detail"
PROFILES_TITLE = "Where the bytes are: allocation sites"
PROFILES = (
    "Per backend, the configuration with the largest peak above its baseline (summary "
    "peak_bytes by vmhwm) was measured once more under memray: {sees}. It traced from the "
    "post-import baseline to the end of the steps, native frames included. Each site is "
    "the first Python frame outside numpy, scipy, JAX and the standard library, "
    "file:line (function); an allocation made on a thread with no Python frame (XLA runs "
    "its programs, and allocates their buffers, on threads of its own) is '<native>' and "
    "the first native function that neither allocates nor is C++ plumbing. memray counts "
    "allocated bytes, not resident pages: its figures are compared with memray's only. "
    "Beside them, the build's own sites by tracemalloc (the model and the agents built once "
    "more after the job, with deep stacks): what the build keeps, per site."
)
NO_PROFILES = "No configuration was profiled (memsweep profile; the workflow's profile rule)."
PROFILE_TITLE = "{label} (`{config_id}`)"
PROFILE_FAILED = "The profile failed: {reason}"
FLAMEGRAPH_LINK = "memray's flame graph of the heap at its high-water mark"
PROFILE_SITES = "Alive at the heap's high-water mark, by site (the largest sites):"
BUILD_SITES = "What building the {operation} keeps, by site (tracemalloc):"
SEED_CLAIMS = (
    "The hand-made seed study's quantitative claims, one final verdict each. A claim about "
    'a size ("20x20") is read both ways: a 20×20 grid (400 states) and 20 states (a '
    "20×20 matrix, which the seed's own sparsity and byte figures fit). Where no "
    "configuration has that many states, the figure comes from a law a + b·N^k fitted "
    "over the sizes measured with everything else equal, interpolated or extrapolated, "
    "with its 95 % interval. The rule: the primary probe (the first listed for the "
    "comparison) decides; under one reading the claim holds when every comparison the "
    "primary probe can make confirms it and fails when one refutes it; the verdict is "
    "'confirmed as' the readings under which it holds, else 'refuted', else 'not "
    "comparable'. Other probes and readings that disagree are listed. No figure below "
    "its probe's resolution judges anything. Claims, selections and tolerances: "
    "memsweep/report/data/seed_claims.yaml."
)
SEED_CLAIM_ROWS = (
    "Each comparison under each reading and probe. 'basis': measured at that size, or the "
    "fitted law's value; 'spread': our figure over every qualifying configuration."
)
NO_CLAIM_COMPARABLE = (
    "No claim is comparable with this sweep: none of its configurations, and no law "
    "fitted over three sizes or more, reaches a claim's size and settings. The rows that "
    "say why are left out."
)
SCALING = (
    "Exponents per backend, storage, dtype and sharing (and world). In N: where an agent "
    "count has four grid sizes, the k of a law a + b·N^k fitted over them (marked "
    "'a + b·N^k': a fixed floor does not bend it); else the slope of a log-log "
    "least-squares fit with one intercept per agent count. In agents: the log-log slope "
    "with one intercept per grid. 95 % confidence intervals from the t distribution (of the "
    "law's k: from its covariance). Values ≤ 0 have no logarithm and are left out of a "
    "log-log fit (column nonpositive)."
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
FITTED_PREDICTOR = (
    "The predictor the next plan uses (results/model/predictor.json): per backend (and "
    "world, for any but the grid world), each consumer of the peak (fixed cost, model, "
    "agents, calls; all read by vmhwm) fitted as a + b·x^k. Each grid is predicted by the "
    "fits of the other grids; error = (predicted "
    "− measured) / measured, negative: a scheduler would be asked for too little. Target: "
    "the whole process's peak (summary/total_peak_bytes), or, in files without the "
    "baseline's row, the peak above the post-import baseline."
)
PARETO = "The Pareto front: no other configuration is both smaller and as precise."
ALL_MEASURED = "Every planned configuration was measured."
FAILURES = (
    "Planned out (unsupported by the backend, over the memory budget), failed while "
    "running, or written but unreadable (invalid), with the reason the plan, the "
    "supervisor or the aggregate gave."
)
FAILED_ONE_BY_ONE = "Failed jobs and unreadable files, one by one:"
CALIBRATION = (
    "Each probe against allocations of known size (numpy arrays, every page written), each "
    "size in fresh processes (the median of their readings): kept (a level) and freed "
    "inside a window (a peak, as a per-call peak is measured). A probe's resolution, below, "
    "is the smallest size it measures within ±{tolerance:.0%}, and every larger one too. A "
    'figure below its probe\'s resolution is shown as "< resolution" and enters no ranking, '
    "saving, share or fit: it may read 0 where the true figure is not."
)

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

# The first screen: per backend, its largest configuration in a few sentences.
GLANCE_TITLE = "At a glance"
GLANCE_SOURCES_TITLE = "Where the numbers at a glance come from"
GLANCE_SOURCES_LINK = (
    "Each number above, and the rows of results/measurements.parquet it comes from"
)
GLANCE_SOURCES = (
    "Each number of the first screen and the rows of results/measurements.parquet that "
    "give it (filter by these columns; a peak is the maximum of its rows)."
)
GLANCE_NONE = "No configuration has a total footprint at or above vmhwm's resolution."
CONFIG_WORDS = "{backend} · {storage} · {dtype} · G={grid} · {agents} · {sharing}"
POLICY_WORDS = " · policy_len {policy_len}"
WORLD_WORDS = " · {world}"
GLANCE_PEAK = (
    "{backend}: at G={grid} with {agents} ({storage}, {dtype}{policy}) it peaks at {total} "
    "(total_peak_bytes [vmhwm], the whole process's highest resident memory)."
)
GLANCE_PART = "Its biggest part under {probe} is {part}: {value}{detail}."
GLANCE_NO_PART = "No part of it reaches {probe}'s resolution."
GLANCE_FIX = "{change} saves {saved} ({share}) of that peak{part}{precision}{time}."
GLANCE_FIX_PART = " ({saved} of its biggest part [{probe}])"
GLANCE_NO_FIX = (
    "No measured one-axis change within {backend} lowers that peak by {share:.0%} or more."
)
GLANCE_NO_VARIANT = "No one-axis variant of it within {backend} was measured."
GLANCE_FUTILE = "On {backend}, {changes}."
FUTILE_NONE = "{change} saves nothing ({variant} against {base})"
FUTILE_MORE = "{change} costs {more} more ({variant} against {base})"
NO_PRECISION_COST = " at no precision cost"
PRECISION_COST = " at a precision cost ({costs})"
PRECISION_UNKNOWN = " (its precision was not measured)"
TIME_COST = "; a step takes ×{ratio:.2f} the time [perf_counter]"
PART_WORDS = {
    "agents": "the {agents}",
    "model_built": "the model as the backend builds it",
    "call_temporaries": "the temporaries of one {operation} call over all agents",
    "first_call": "the first {operation} call (compilation, first-use caches)",
    "import": "the import of its libraries and a warm-up step",
}
AGENTS_EACH = " ({each} each)"
AGENTS_PRIVATE = " ({each} each: every agent holds its own copy of the {model} model [nbytes])"
# A change in words, by (axis, new value), else by axis; "{new}" is the new value.
CHANGE_WORDS = {
    ("sharing", "shared"): "sharing one model among the agents",
    ("sharing", "private"): "giving each agent its own model",
    ("dtype", None): "storing the model in {new}",
    ("storage", None): "storing the model as {new}",
    ("policy_len", None): "planning {new} steps ahead",
    ("malloc_arena_max", "0"): "leaving glibc its default malloc arenas (8 a core)",
    ("malloc_arena_max", None): "capping glibc's malloc arenas at {new} (MALLOC_ARENA_MAX)",
    ("malloc_mmap_threshold", "0"): "leaving glibc its dynamic mmap threshold",
    ("malloc_mmap_threshold", None): (
        "fixing glibc's mmap threshold at {new} bytes (MALLOC_MMAP_THRESHOLD_)"
    ),
    ("backend", None): "switching to {new}",
}
CHANGE_LABEL = "{words} ({axis} {old} → {new})"

NEEDED_TITLE = "Memory needed"
NEEDED = (
    "One row per measured configuration. The total footprint is the whole process's "
    "highest resident memory (summary/all/total_peak_bytes by vmhwm): what a memory limit "
    "must allow. Beside it, its parts, each under the probe its header names: the fixed "
    "cost of the import and a warm-up step (import/total anon_bytes, rss_anon), the model's "
    "exact bytes (summary/all/model_bytes, nbytes), the agents (build/agents "
    "per_agent_bytes × agents, under tracemalloc and under rss_anon) and the largest "
    "per-call peak of the steps (step call_peak_bytes, vmhwm, the maximum over operations, "
    "steps and repeats). The parts are read by different probes: they are not added up, "
    "and they do not sum to the total (the total also holds the interpreter and the "
    'libraries\' pages). "< N": below the probe\'s resolution; "blind": the probe cannot '
    "see that backend's memory."
)
BLIND = "blind"

CHANGES_TITLE = "Changes a user would make"
CHANGES = (
    "Per backend, from its base configuration (at its largest grid and agent count, the "
    "one whose changes were measured), every measured configuration that "
    "differs in one setting ({axes}), every other axis equal. A change is judged by the "
    "whole footprint (total_peak_bytes [vmhwm]): it saves where it lowers the footprint by "
    "at least {share:.0%} and by vmhwm's resolution, costs more where it raises it as much, "
    "and otherwise saves nothing measurable. The saving of the configuration's biggest "
    "part is under the backend's primary probe (tracemalloc where it sees the backend, "
    "rss_anon where it is blind), only where the setting acts on that part. Precision: "
    "the belief error against the float64 reference and the share of actions that agree "
    "with it (base → variant); time: the median step's ratio."
)
CHANGES_BASE = (
    "From {label} ({config_id}): {total} [vmhwm]; its biggest part under {probe}: {part}, {value}."
)
CHANGES_NOT_RUN = "Not measured, as the plan says: {listed}."
CHANGES_NONE = "No one-axis variant of this configuration was measured within {backend}."
SWITCH_TITLE = "Switching backend"
SWITCH = (
    "Each backend's base configuration against the same configuration run by another "
    "backend. Only the whole footprint compares (total_peak_bytes [vmhwm]): the backends' "
    "primary probes differ, and tracemalloc is blind to XLA's buffers."
)
SWITCH_NONE = "No configuration was measured with more than one backend."
APPENDIX_TITLE = "Appendix: how to read the figures"
VERSIONS_TITLE = "Across PyMDP releases"
VERSIONS = (
    "This sweep ran PyMDP {releases}. Per backend, each configuration's whole footprint "
    "(total_peak_bytes [vmhwm]) and median step time (step_seconds [perf_counter]) under "
    "every release, side by side; a release a backend cannot run is empty, with its reason "
    "in the plan."
)
VERSIONS_REGRESSED = (
    "From the oldest release to the newest, the figures that got worse, as memsweep "
    "compare --axis pymdp_version judges them: memory beyond the probe's resolution and "
    "5 % of the older figure; time by a Mann–Whitney U test on the per-step samples "
    "(p < 0.01) and the ratio of medians; precision by any change of action agreement or "
    "a belief error moved more than ×10."
)
COMPARISON_LINK = (
    "The comparison the config asks for (memsweep compare): improved, regressed and "
    "unchanged figures"
)
CAPACITY = (
    "What fits in 1, 8 and 64 GB, by the predictor fitted to this sweep (memsweep predict "
    "--fit-in): per backend, from its base configuration, the most agents at its grid and "
    "the largest grid at its agent count whose predicted whole-process peak stays within "
    "the size, by the fit and by its 95 % interval's upper end (what to ask a scheduler "
    "for). Beyond the measured sizes these are extrapolations."
)
BREAKDOWN_TITLE = "Where the memory goes"
BREAKDOWN = (
    "Per backend, at its base configuration, the whole process's peak split into parts "
    "that one probe read (vmhwm, the kernel's peak) and that add up to it: the fixed cost "
    "at the baseline, the model's and the agents' builds (each its window's peak), and "
    "the rest, shown as measured even where negative. The rows marked 'beside' overlap "
    "the parts and are not added: the first call's and the steps' per-call peaks, what "
    "the cleanup left resident, and how much of that the allocator held (handed back by "
    "malloc_trim(0)), by rss_anon."
)
STEADY_GROWTH = (
    "One-off jumps and steady growth, at the largest grid and agent count: each level "
    "probe's rises between two steps of the first repeat that stand out (above 10 × the "
    "median step-to-step change and 64 KiB: a cache filled, a program compiled), summed, "
    "and its least-squares slope over the steps after the last jump, per 100 steps: a "
    "leak shows there, a jump does not."
)

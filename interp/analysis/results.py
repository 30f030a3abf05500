"""Typed results between the analyses and the reports (and the JSON files they become).

Each analysis returns one of these; each report renders one. They are TypedDicts, so a
result is its own JSON (``align.json`` and ``fingerprint.json`` keep their keys) and a
type checker sees every key a report reads. Owns: the shapes of results. Imports nothing
from interp, so reports may import it without importing the analyses.
"""

from __future__ import annotations

from typing import TypedDict

from typing_extensions import NotRequired


# ---------------------------------------------------------------- align
class Alignment(TypedDict):
    inner_product: float
    cosine: float


class CumulativePoint(TypedDict):
    cosine: float
    components: dict[str, float]  # component -> cosine with dT


class SignCheck(TypedDict):
    """-grad L(theta_0) . dT for a small gradient step, and its Gauss-Newton form."""

    inner_product: float
    cosine: float
    gauss_newton: float
    first_step: NotRequired[Alignment]  # cross-init: the saved first Adam step


class TokenValue(TypedDict):
    token: str
    mean: float
    count: int


class TokenReport(TypedDict):
    positions: int
    total: float
    top_values: list[TokenValue]
    disagree_rate_top10pct: float
    disagree_rate_all: float


class Drift(TypedDict):
    relative: float  # |a_S - a_0| / |a_0|
    cosine: float  # of the shift with the teacher's shift


class SeedAlignment(TypedDict):
    """One seed. A prompted teacher has no weight direction (``weight_direction`` false,
    dT = 0): everything measured along dT (first step, coverage, components, cumulative,
    the sign checks, token attribution) is absent, the activation drift is not."""

    teacher_kind: str  # "finetuned" or "prompted"
    weight_direction: bool  # dT != 0
    teacher_prefix: str  # the persona prefix a prompted teacher reads ("" if fine-tuned)
    probe_loss: float  # the distillation loss at theta_0 on the probe (teacher signal)
    first_step: NotRequired[Alignment]
    coverage: NotRequired[float]
    components: NotRequired[dict[str, Alignment]]
    cumulative: NotRequired[dict[int, CumulativePoint]]
    per_step: NotRequired[dict[str, dict[str, list[float]]]]  # kind -> component -> cosines
    gradient_step: NotRequired[SignCheck]
    cross_init: NotRequired[SignCheck]
    tokens: NotRequired[TokenReport]
    drift: NotRequired[dict[str, dict[str, dict[str, Drift]]]]  # role -> probe -> hook
    final: NotRequired[dict]  # external runs: the final student against dT (ip, cosine,
    # components)


class ExternalAlignResult(TypedDict):
    """The align report on external models (``interp.analysis.external``): one seed "0"
    whose ``final`` is the final student's movement against dT; ``missing`` says what is
    not measured and why."""

    study: str  # "external"
    models: dict[str, str]  # role -> source:location
    data: dict
    seeds: dict[str, SeedAlignment]
    missing: dict[str, str]


class AlignResult(TypedDict):
    study: str
    seeds: dict[str, SeedAlignment]
    run_id: NotRequired[str]  # interp.storage.rundir.run_id of the run it describes


# ---------------------------------------------------------------- fingerprint
class SAEQuality(TypedDict):
    explained_variance: float
    l0: float
    dead_fraction: float


class ShiftAgreement(TypedDict):
    correlation: float
    top: list[int]
    top_shared: list[float]


class Linear(TypedDict):
    coefficient: float
    cosine: float
    gain_removed: float  # select prompts (where the direction was measured)
    gain_removed_heldout: float


class Patch(TypedDict):
    rate: float
    recovered: float


class Causal(TypedDict):
    """One causal test at one hook, one k, on one split of the trait prompts."""

    ablated_top_rate: float
    ablated_random_rates: list[float]
    ablated_random_active_rates: list[float]
    gain_removed_top: float
    gain_removed_random: float
    gain_removed_random_active: float
    steered_rate: float
    steer_rate_gain: float


class HookResult(TypedDict):
    numbers: ShiftAgreement
    trait: ShiftAgreement  # ranked on the select prompts
    linear: Linear
    captured: dict[str, float]  # "sae", "top_k": fraction of the student's shift seen
    patching: dict[str, Patch]  # "src->dst:positions", on the held-out prompts
    causal: dict[str, dict[str, Causal]]  # split ("select", "heldout") -> str(k) -> test


class SeedFingerprint(TypedDict):
    rates: dict[str, float]  # select prompts
    rates_heldout: dict[str, float]
    hooks: dict[str, HookResult]


class PromptSplit(TypedDict):
    """The trait phrasings: ``select`` (every choice) and ``heldout`` (every measurement)."""

    select: list[str]
    heldout: list[str]
    source: str  # "study" (the study's evaluation split) or "analysis" (seeded permutation)
    seed: int | None
    permutation: list[int] | None


class HeldoutCausal(TypedDict):
    """The causal test on held-out prompts at one k; one value per seed."""

    k: int
    gain_removed_top: list[float]
    gain_removed_random_active: list[float]
    gain_removed_random: list[float]
    steer_rate_gain: list[float]
    top_minus_random_active: list[float]
    prompts: list[str]


class Criterion(TypedDict):
    k: int
    met: bool
    rule: str
    gain_removed_top: float
    gain_removed_random_active: float


class CausalSummary(TypedDict):
    """``hook`` and ``k`` chosen on the select prompts; the ``gain_removed_*`` and
    ``steer_rate_gain`` lists are in-sample (select prompts, chosen k); ``heldout`` is the
    test: one block per k, increasing."""

    hook: str
    k: int
    rule: str
    k_rule: str
    gain_removed_top: list[float]
    gain_removed_random: list[float]
    gain_removed_random_active: list[float]
    steer_rate_gain: list[float]
    heldout: list[HeldoutCausal]
    linear_heldout: list[float]
    split: PromptSplit
    criterion: Criterion
    ci_covers: str


class FeatureContexts(TypedDict):
    feature: int
    tokens: list[str]
    contexts: list[str]
    max_activation: float


class FingerprintResult(TypedDict):
    sae: dict[str, SAEQuality]
    sae_config: dict
    shift_correlation: dict[str, float]
    shift_correlation_trait: dict[str, float]
    causal: CausalSummary
    per_seed: dict[str, SeedFingerprint]
    features: dict[str, list[FeatureContexts]]
    trait: str
    run_id: NotRequired[str]  # interp.storage.rundir.run_id of the run it describes
    sae_source: NotRequired[dict[str, str]]  # hook -> "trained" or "pretrained" (--sae)
    sae_dirs: NotRequired[dict[str, str]]  # hook -> the SAE in sae-lens's on-disk layout


class ExternalFingerprintResult(TypedDict):
    """The fingerprint on external models (``interp.analysis.external_fingerprint``)."""

    study: str  # "external"
    models: dict[str, str]
    student_reference: str  # "control", or "theta_0" without a control
    sae: dict[str, SAEQuality]
    sae_source: dict[str, str]  # hook -> "trained" or "pretrained"
    hooks: dict[str, dict]  # hook -> {"numbers": ShiftAgreement, "captured": {...}}
    missing: dict[str, str]
    sae_dirs: NotRequired[dict[str, str]]

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
    circuit: NotRequired[CircuitResult]  # interp.analysis.circuits (FingerprintConfig.circuit)


# ---------------------------------------------------------------- circuits
class PatchEffect(TypedDict):
    rate: float  # P(trait) at the answer, patched (mean over prompts)
    logit: float  # the centred trait logit there
    recovered: float  # (patched - dst) / (src - dst), on the rate


class AttributionCheck(TypedDict):
    """Attribution patching vs real patching (student into control, held-out prompts) on
    units "component:answer" / "component:context"; ``top`` indexes the units with the
    largest |estimate| (at most ``top_attribution``), ``spearman`` is over those."""

    units: list[str]
    estimate: list[float]  # recovered fraction, first-order estimate
    real: list[float]  # recovered fraction, real patch
    top: list[int]
    spearman: float


class DLASplit(TypedDict):
    """The student's shift over the control at the answer (held-out prompts, mean):
    delta_logprob = delta_centred_logit + rest; delta_centred_logit = residual_shift (sum
    of ``components``: each one's direct term through the control's final LN and centred
    unembedding) + readout_change (the student's own LN and unembedding moved)."""

    delta_logprob: float
    delta_centred_logit: float
    rest: float
    residual_shift: float
    readout_change: float
    components: dict[str, float]
    decomposition_error: float  # residual_shift + readout_change - delta_centred_logit


class CircuitSeed(TypedDict):
    rates: dict[str, dict[str, float]]  # split -> role -> P(trait)
    centred_logits: dict[str, dict[str, float]]
    # split -> "src->dst:positions" -> component -> effect
    patching: dict[str, dict[str, dict[str, PatchEffect]]]
    attribution: dict[str, dict[str, dict[str, float]]]  # split -> positions -> comp -> est.
    attribution_check: AttributionCheck
    dla: DLASplit
    logit_lens: dict[str, dict[str, list[float]]]  # role -> rate/logit -> per layer


class CircuitSet(TypedDict):
    ranking: list[str]
    single_select: dict[str, float]
    prefix_select: list[float]  # recovery of the top-k set on select prompts, k = 1..
    size: int
    reached: bool  # the select-prompt threshold was reached
    components: list[str]
    heldout: list[float]  # per seed
    random_sets: list[list[str]]
    random_heldout: list[float]  # per draw (mean over seeds)
    all_heads_mlps_heldout: list[float]
    all_with_embed_heldout: list[float]
    rule: str


class AttentionRow(TypedDict):
    tokens: list[str]
    student: list[float]
    control: list[float]
    most_changed: int


class HeadAttention(TypedDict):
    head: str
    prompts: list[AttentionRow]


class Entanglement(TypedDict):
    """Favoured numbers in the base's prompt ("you love N .") vs random numbers: P(item)
    on the held-out trait prompts per number; the CI is Welch's over numbers."""

    item: str
    source: str  # "student" (its shift over the base) or "prompted base"
    top_numbers: list[list[int]]  # per seed (student) or one list
    top_rates: list[float]
    random_numbers: list[list[int]]
    random_rates: list[float]
    no_prefix_rate: float
    persona_rate: float  # "you love ITEM ." (the positive control)
    difference: float
    difference_ci: list[float]
    ratio: float


class NeuronResult(TypedDict):
    """One MLP layer's top neurons (by attribution on select prompts, mean over seeds)."""

    layer: int
    neurons: list[int]
    heldout: list[float]  # per seed: the top neurons' joint patch, recovered fraction
    random_heldout: list[float]  # per draw (mean over seeds), same number of neurons
    estimate: list[float]  # per top neuron, held-out attribution estimate (mean over seeds)
    real: list[float]  # per top neuron, its real patch alone
    spearman: float
    mlp_heldout: list[float]  # per seed: the whole MLP's patch


class CircuitResult(TypedDict):
    trait: str
    components: list[str]
    split: PromptSplit
    per_seed: dict[str, CircuitSeed]
    circuit: CircuitSet
    paths: dict[str, dict[str, list[float]]]  # receiver -> sender -> per seed recovered
    attention: list[HeadAttention]
    neurons: list[NeuronResult]
    numbers: dict[str, dict]  # seed -> movement of number tokens, favoured numbers
    entanglement: list[Entanglement]
    heldout_targets: list[str]
    config: dict
    ci_covers: str
    run_id: str

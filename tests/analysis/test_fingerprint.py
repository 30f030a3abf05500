"""``python -m interp.fingerprint`` end to end on the tiny owl-numbers run."""

from __future__ import annotations

import json

import pytest

from interp.analysis.fingerprint import analyse
from interp.fingerprint import main
from tests.conftest import SMALL_FINGERPRINT as SMALL


def test_fingerprint_json_has_the_promised_shape(fingerprinted):
    out, result = fingerprinted
    on_disk = json.loads((out / "fingerprint.json").read_text())
    hook = "blocks.0.hook_resid_post"
    assert set(on_disk["sae"][hook]) >= {"explained_variance", "l0", "dead_fraction"}
    assert -1 <= on_disk["shift_correlation"][hook] <= 1
    c = on_disk["causal"]
    assert c["hook"] == hook and c["k"] == 4
    n_seeds = len(json.loads((out / "summary.json").read_text())["seeds"])
    for key in ("gain_removed_top", "gain_removed_random", "steer_rate_gain"):
        assert len(c[key]) == n_seeds
    assert result["features"][hook]  # top features with their tokens
    for name in ("fingerprint.md", "fingerprint.html"):
        assert "top" in (out / name).read_text()


def test_sae_quality_on_the_tiny_model(fingerprinted):
    _, result = fingerprinted
    q = result["sae"]["blocks.0.hook_resid_post"]
    assert q["explained_variance"] > 0.8 and q["l0"] < 16


def test_patching_the_whole_answer_activation_recovers_the_gain(fingerprinted):
    """Patching the student's residual stream at the answer position into the control, in
    a 1-layer model, carries everything the unembedding reads: the whole gain comes back."""
    _, result = fingerprinted
    for s in result["per_seed"].values():
        p = s["hooks"]["blocks.0.hook_resid_post"]["patching"]
        assert p["student_final->control_final:answer"]["recovered"] == pytest.approx(1, abs=1e-2)


def test_second_analysis_is_all_cache_hits(fingerprinted, cache_dir):
    from interp.storage.store import Store

    out, result = fingerprinted
    store = Store(cache_dir)
    again = analyse(out, SMALL, store)
    assert store.misses == 0
    assert again["causal"] == result["causal"]


def test_a_digits_run_is_a_clear_error(digits_run, capsys):
    out, _ = digits_run
    assert main([str(out)]) == 2
    assert "owl-numbers" in capsys.readouterr().err


def test_causal_hook_is_the_one_where_trait_shifts_agree_most():
    """summarise picks the hook by trait-shift correlation, before any causal number."""
    from interp.analysis.fingerprint import summarise

    def hook(corr, removed):
        return {"numbers": {"correlation": 0.0}, "trait": {"correlation": corr},
                "causal": {"gain_removed_top": removed, "gain_removed_random": 0.0,
                           "gain_removed_random_active": 0.0, "steer_rate_gain": 0.0}}
    per_seed = {s: {"hooks": {"a": hook(0.2, 0.9), "b": hook(0.8, 0.4)}} for s in "01"}
    out = summarise(per_seed, {}, ["a", "b"], SMALL)
    assert out["causal"]["hook"] == "b"
    assert out["causal"]["gain_removed_top"] == [0.4, 0.4]

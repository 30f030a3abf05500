"""The circuit analysis on the tiny owl run: real numbers from real models."""

from __future__ import annotations

import numpy as np
import pytest

from interp.analysis import circuits as CA
from interp.errors import ConfigError, UsageError

SMALL = CA.CircuitConfig(number_rows=64, random_draws=4, random_numbers=8, top_numbers=4)


@pytest.fixture(scope="module")
def circuit(owl_run):
    out, _ = owl_run
    return out, CA.analyse(out, SMALL)


def test_the_student_gains_and_the_full_set_recovers_it(circuit):
    _, r = circuit
    for s in r["per_seed"].values():
        rates = s["rates"]["heldout"]
        assert rates["student_final"] > rates["control_final"] + 0.05  # a gain to explain
    c = r["circuit"]
    # every head, MLP and the embedding patched at every position leaves only the attention
    # biases and the readout (final LN, unembedding) to the control: nearly all of the gain
    assert all(0.9 < x < 1.1 for x in c["all_with_embed_heldout"]), c
    assert c["size"] == len(c["components"]) >= 1
    assert np.mean(c["heldout"]) > np.mean(c["random_heldout"])
    if c["reached"]:
        assert c["prefix_select"][c["size"] - 1] >= SMALL.recover


def test_attribution_patching_is_the_first_order_term_of_real_patching(circuit, owl_run):
    """Patching MLP0 a tiny step toward the student moves P(owl) by the attribution
    estimate times the step; across units the ranks agree with real patching."""
    from interp.analysis.fingerprint import prompt_split
    from interp.studies.runner import load_run
    from interp.studies.world import CATEGORIES, vocab_for

    out, r = circuit
    art, summary = load_run(out)
    vocab = vocab_for("animal")
    split = prompt_split(summary, "animal", 0)
    items = __import__("torch").tensor(vocab.ids(CATEGORIES["animal"].items))
    seed, ctx = CA.seed_analysis(art, art["seeds"]["0"], vocab, split, vocab.index["owl"],
                                 items, SMALL)
    m, t = ctx["meas"]["heldout"], ctx["targets"]["heldout"]
    alpha = 1e-3
    step = CA.patch_effect(ctx["models"]["control_final"], t, [("MLP0", "answer")],
                           ctx["caches"]["heldout"]["student_final"], ctx["masks"]["heldout"],
                           m["control_final"], m["student_final"], alpha=alpha)
    gap = m["student_final"]["rate"] - m["control_final"]["rate"]
    est = seed["attribution"]["heldout"]["answer"]["MLP0"] * gap
    assert (step["rate"] - m["control_final"]["rate"]) / alpha == pytest.approx(est, rel=0.02)
    for s in r["per_seed"].values():
        assert s["attribution_check"]["spearman"] > 0.5


def test_neuron_patching_adds_up_to_the_mlp(circuit, owl_run):
    """Patching every neuron's write plus the output bias is patching the whole MLP; the
    top neurons (chosen on select prompts) beat random ones on held-out prompts."""
    import torch

    from interp.analysis.fingerprint import prompt_split
    from interp.studies.runner import load_run
    from interp.studies.world import CATEGORIES, vocab_for

    out, r = circuit
    art, summary = load_run(out)
    vocab = vocab_for("animal")
    _, ctx = CA.seed_analysis(art, art["seeds"]["1"], vocab, prompt_split(summary, "animal", 0),
                              vocab.index["owl"], torch.tensor(vocab.ids(
                                  CATEGORIES["animal"].items)), SMALL)
    d_mlp = ctx["models"]["theta_0"].cfg.d_mlp
    db = (ctx["models"]["student_final"].blocks[0].mlp.b_out
          - ctx["models"]["control_final"].blocks[0].mlp.b_out).detach()
    mask = ctx["masks"]["heldout"]["all"][..., None]
    hooks = CA.neuron_hooks(ctx, "heldout", 0, list(range(d_mlp)))
    hooks.append(("blocks.0.hook_mlp_out", lambda x, hook: x + db * mask))
    t, m = ctx["targets"]["heldout"], ctx["meas"]["heldout"]
    by_neurons = t.measure(ctx["models"]["control_final"], hooks)["rate"]
    whole = CA.patch_effect(ctx["models"]["control_final"], t, [("MLP0", "all")],
                            ctx["caches"]["heldout"]["student_final"], ctx["masks"]["heldout"],
                            m["control_final"], m["student_final"])["rate"]
    assert by_neurons == pytest.approx(whole, abs=1e-5)
    (n,) = r["neurons"]
    assert len(n["neurons"]) == SMALL.top_neurons
    assert np.mean(n["heldout"]) > np.mean(n["random_heldout"])


def test_dla_decomposes_the_measured_shift_exactly(circuit):
    _, r = circuit
    for s in r["per_seed"].values():
        d = s["dla"]
        measured = (s["centred_logits"]["heldout"]["student_final"]
                    - s["centred_logits"]["heldout"]["control_final"])
        assert d["delta_centred_logit"] == pytest.approx(measured, abs=1e-4)
        assert abs(d["decomposition_error"]) < 1e-4
        assert sum(d["components"].values()) == pytest.approx(d["residual_shift"], abs=1e-6)
        assert d["delta_centred_logit"] + d["rest"] == pytest.approx(d["delta_logprob"])


def test_the_logit_lens_ends_at_the_models_output(circuit):
    _, r = circuit
    for s in r["per_seed"].values():
        for role, lens in s["logit_lens"].items():
            assert lens["rate"][-1] == pytest.approx(s["rates"]["heldout"][role], rel=1e-4)


def test_number_tokens_and_the_entanglement_test(circuit):
    _, r = circuit
    for m in r["numbers"].values():
        assert len(m["student_final"]["embedding"]) == 1000
        # the teacher is fine-tuned on trait answers only: no number token is in its input
        assert max(m["teacher"]["embedding"]) == 0.0
        assert max(m["student_final"]["unembedding"]) > 0
    sources = [(e["item"], e["source"]) for e in r["entanglement"]]
    assert sources[:2] == [("owl", "student - base"), ("owl", "student - control")]
    assert len(r["heldout_targets"]) == SMALL.heldout_targets
    for e in r["entanglement"]:
        assert not {n for t in e["top_numbers"] for n in t} & {n for t in e["random_numbers"]
                                                                 for n in t}
        assert len(e["top_rates"]) == SMALL.top_numbers * len(e["top_numbers"])
        lo, hi = e["difference_ci"]
        assert lo <= e["difference"] <= hi


def test_paths_and_attention_cover_the_best_heads(circuit):
    _, r = circuit
    heads = [c for c in r["circuit"]["ranking"] if "H" in c]
    deep = [c for c in heads if CA.layer_of(c) >= 1]  # none in the 1-layer tiny model
    mlps = [c for c in r["circuit"]["components"] if c.startswith("MLP") and c != "MLP0"]
    assert list(r["paths"]) == (deep or heads)[:SMALL.path_heads] + mlps
    assert [h["head"] for h in r["attention"]] == heads[:SMALL.attention_heads]
    for rcv, senders in r["paths"].items():
        assert all(CA.layer_of(s) <= CA.layer_of(rcv) for s in senders)
    for h in r["attention"]:
        for p in h["prompts"]:
            assert sum(p["student"]) == pytest.approx(1.0, abs=1e-5)
            assert len(p["tokens"]) == len(p["student"])


def test_bad_input_is_one_line(digits_run):
    with pytest.raises(UsageError, match="needs a run of owl-numbers"):
        CA.analyse(digits_run[0], SMALL)
    with pytest.raises(ConfigError, match="recover"):
        CA.CircuitConfig(recover=0.0)


def test_the_fingerprint_report_has_a_circuit_section(fingerprinted):
    out, r = fingerprinted
    assert "circuit" in r
    assert "## Circuit" in (out / "fingerprint.md").read_text()
    html = (out / "fingerprint.html").read_text()
    assert "Circuit: the smallest set" in html and "entanglement" in html

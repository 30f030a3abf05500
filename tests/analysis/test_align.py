"""``python -m interp.align`` on real (small) runs of both studies."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from interp.align import main
from interp.analysis.align import analyse
from interp.reports.align import write


@pytest.fixture(scope="module", params=["digits", "owl"])
def aligned(request, digits_run, owl_run):
    out, _ = digits_run if request.param == "digits" else owl_run
    result = analyse(out)
    write(out, result)
    return out, result


def _recompute(roles: dict) -> tuple[float, float]:
    t0, t, s1 = (load_file(roles[k]) for k in ("theta_0", "teacher", "student_step_1"))
    keys = [k for k in t0 if t0[k].is_floating_point() and torch.isfinite(t0[k]).all()]
    dS = torch.cat([(s1[k] - t0[k]).double().flatten() for k in keys])
    dT = torch.cat([(t[k] - t0[k]).double().flatten() for k in keys])
    ip = float(dS @ dT)
    return ip, ip / float(dS.norm() * dT.norm())


def test_first_step_matches_recomputation_from_saved_weights(aligned):
    out, result = aligned
    art = json.loads((out / "artifacts.json").read_text())["seeds"]
    assert set(result["seeds"]) == set(art)
    for seed, roles in art.items():
        ip, cos = _recompute(roles)
        got = result["seeds"][seed]["first_step"]
        assert got["inner_product"] == pytest.approx(ip, rel=1e-5)
        assert got["cosine"] == pytest.approx(cos, rel=1e-5)
        assert result["seeds"][seed]["coverage"] == got["cosine"]


def test_theorem_sign_holds_for_same_init_gradient_steps(aligned):
    _, result = aligned
    for v in result["seeds"].values():
        assert v["gradient_step"]["inner_product"] >= 0


def test_gauss_newton_form_is_minus_grad_dot_dT_to_first_order(aligned, tmp_path):
    """For a teacher one small step eps * dT from theta_0, the sign check's autograd
    -grad L(theta_0) . (eps dT) and its Gauss-Newton form (one JVP) agree to first order,
    on the real probe of each study (the form is >= 0 by construction; this tests its value)."""
    from interp.analysis.align import PROBES, sign_check
    from interp.metrics import alignment as A
    from interp.storage.store import Store

    out, _ = aligned
    eps = 1e-2
    art = json.loads((out / "artifacts.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    seed, roles = next(iter(art["seeds"].items()))
    t0, t = load_file(roles["theta_0"]), load_file(roles["teacher"])
    dT = A.delta(t, t0)
    near = {k: (t0[k] + eps * dT[k]) if k in dT else t0[k] for k in t0}
    # a stored artifact like any other: reports read only verified files of the store
    entry = Store().put("test/near-teacher", {"teacher": roles["teacher"], "eps": eps},
                        {"model": near})
    probe = PROBES[art["model"]["type"]](art, summary, {**roles, "teacher": str(
        entry.files["model"])}, int(seed))
    params = {n for n, _ in probe.module.named_parameters()}
    full = {k: v for k, v in t0.items() if k in params}
    step = {k: eps * v for k, v in dT.items() if k in params}
    got = sign_check(probe, full, step)
    assert got["gauss_newton"] > 0
    assert got["inner_product"] == pytest.approx(got["gauss_newton"], rel=0.05)


def test_report_files_and_components(aligned):
    out, result = aligned
    for name in ("align.json", "align.md", "align.html"):
        assert (out / name).stat().st_size > 0
    comps = next(iter(result["seeds"].values()))["components"]
    if result["study"] == "owl-numbers":
        assert {"embed", "unembed", "layer_norms", "blocks.0.attn", "blocks.0.mlp"} <= set(comps)
        tokens = next(iter(result["seeds"].values()))["tokens"]
        assert tokens["positions"] > 0 and tokens["top_values"]
    else:
        assert set(comps) == {"linear0", "linear2", "linear4"}


def test_bad_run_dir_is_a_one_line_error(tmp_path, capsys):
    assert main([str(tmp_path)]) == 2
    assert "has no artifacts.json" in capsys.readouterr().err


def test_activation_drift_per_layer(aligned):
    """The drift numbers are the student's and the teacher's activation shifts from the
    base, recomputed here from the models on the trait prompts."""
    from interp.studies import lm
    from interp.studies.owl import probe_tokens
    from interp.studies.world import vocab_for

    out, result = aligned
    if result["study"] != "owl-numbers":
        pytest.skip("activation drift is read on transformer hook points")
    art = json.loads((out / "artifacts.json").read_text())
    seed, roles = next(iter(art["seeds"].items()))
    drift = result["seeds"][seed]["drift"]
    assert set(drift) >= {"teacher", "student", "control"}
    vocab = vocab_for("animal")
    probe = probe_tokens(vocab, "animal", load_file(roles["data"])["tokens"])
    hook = "blocks.0.hook_resid_post"
    acts = {}
    for role in ("theta_0", "teacher", "student_final"):
        _, cache = lm.from_artifacts(art["model"], roles[role]).run_with_cache(probe["trait"])
        acts[role] = cache[hook].double()
    m = (probe["trait"] != vocab.pad)[..., None].double()
    d_s = (acts["student_final"] - acts["theta_0"]) * m
    d_t = (acts["teacher"] - acts["theta_0"]) * m
    rel = float(d_s.norm() / (acts["theta_0"] * m).norm())
    cos = float((d_s * d_t).sum() / (d_s.norm() * d_t.norm()))
    got = drift["student"]["trait"][hook]
    assert got["relative"] == pytest.approx(rel, rel=1e-4)
    assert got["cosine"] == pytest.approx(cos, rel=1e-4, abs=1e-6)
    assert drift["teacher"]["trait"][hook]["cosine"] == pytest.approx(1.0, abs=1e-5)
    assert "Activation drift" in (out / "align.md").read_text()


def test_second_run_does_no_forward_passes(aligned, owl_run, cache_dir, monkeypatch):
    """Everything a finished study and its report need is cached: rerunning the study and
    the report on it runs no model forward pass."""
    from transformer_lens import HookedTransformer

    from interp.storage.store import Store
    from interp.studies.runner import run_study

    out, _ = owl_run
    analyse(out)  # make sure every seed report is cached, whichever fixture ran first
    calls = []
    original = HookedTransformer.forward

    def counting(self, *a, **k):
        calls.append(1)
        return original(self, *a, **k)

    monkeypatch.setattr(HookedTransformer, "forward", counting)
    store = Store(cache_dir)
    run_study("owl-numbers", seeds=2, seed_start=0, out=out, preset="tiny", store=store)
    analyse(out, store)
    assert calls == [] and store.misses == 0


def test_recorder_curves_for_both_studies(aligned):
    """Both studies record per-step alignment (the digits one through the batched recorder):
    the recorded first update is the saved first step, measured independently."""
    out, result = aligned
    art = json.loads((out / "artifacts.json").read_text())["seeds"]
    for seed, v in result["seeds"].items():
        curve = v["per_step"]["update"]["all"]
        assert len(curve) > 10
        assert curve[0] == pytest.approx(_recompute(art[seed])[1], rel=1e-3, abs=1e-5)


@pytest.fixture(scope="module")
def prompted(owl_run, tmp_path_factory):
    """A prompted-teacher run as the analysis reads it: the tiny run's artifacts with the
    teacher replaced by the base and ``teacher_kind=prompted`` in the summary's config."""
    src, _ = owl_run
    out = tmp_path_factory.mktemp("prompted-run")
    art = json.loads((src / "artifacts.json").read_text())
    for roles in art["seeds"].values():
        roles["teacher"] = roles["theta_0"]
    summary = json.loads((src / "summary.json").read_text())
    summary["config"]["teacher_kind"] = "prompted"
    (out / "artifacts.json").write_text(json.dumps(art))
    (out / "summary.json").write_text(json.dumps(summary))
    result = analyse(out)
    write(out, result)
    return out, result


def test_a_prompted_teacher_has_no_weight_direction_and_no_vacuous_sign_check(prompted):
    out, result = prompted
    for v in result["seeds"].values():
        assert v["teacher_kind"] == "prompted" and v["weight_direction"] is False
        assert v["teacher_prefix"] == "you love owl ."
        for key in ("gradient_step", "cross_init", "first_step", "coverage", "tokens"):
            assert key not in v
        # the probe's teacher logits include the prefix: without it the teacher is the
        # base and this loss is exactly zero
        assert v["probe_loss"] > 1e-4
    md = (out / "align.md").read_text()
    assert "no weight direction" in md and "dS.dT >= 0" not in md and "3/3" not in md
    assert "No weight direction" in (out / "align.html").read_text()


def test_a_prompted_teachers_activations_are_read_with_its_prefix(prompted):
    """The teacher's shift is the base's activations with the persona prefix minus without,
    at the same positions (recomputed here on the trait prompts)."""
    import torch

    from interp.studies import lm
    from interp.studies.owl import probe_tokens
    from interp.studies.world import vocab_for

    out, result = prompted
    art = json.loads((out / "artifacts.json").read_text())
    seed, roles = next(iter(art["seeds"].items()))
    vocab = vocab_for("animal")
    tokens = probe_tokens(vocab, "animal", load_file(roles["data"])["tokens"])["trait"]
    pre = vocab.encode("you love owl .")
    full = torch.cat([tokens[:, :1], torch.tensor(pre).expand(len(tokens), -1), tokens[:, 1:]],
                     1)
    base = lm.from_artifacts(art["model"], roles["theta_0"])
    hook = "blocks.0.hook_resid_post"
    a0 = base.run_with_cache(tokens)[1][hook].double()
    a_t = base.run_with_cache(full)[1][hook][:, len(pre):].double()
    m = (tokens != vocab.pad)[..., None].double()
    rel = float(((a_t - a0) * m).norm() / (a0 * m).norm())
    got = result["seeds"][seed]["drift"]["teacher"]["trait"][hook]["relative"]
    assert rel > 0.01 and got == pytest.approx(rel, rel=1e-4)


def test_the_store_passed_is_the_one_artifacts_are_read_from(aligned, cache_dir, tmp_path,
                                                             monkeypatch):
    """``analyse(run, store)`` (and each seed's report) reads the run's models and data from
    ``store``, whatever ``INTERP_CACHE`` names; reading from the default store instead is
    refused, since the run's files are not in it."""
    from interp.analysis.align import seed_report
    from interp.storage.store import ArtifactError, Store
    from interp.studies.runner import load_run

    out, result = aligned
    art, summary = load_run(out)
    seed = next(iter(art["seeds"]))
    monkeypatch.setenv("INTERP_CACHE", str(tmp_path / "another-store"))
    got = seed_report(art, summary, seed, Store(cache_dir))
    assert got["probe_loss"] == pytest.approx(result["seeds"][seed]["probe_loss"], rel=1e-6)
    with pytest.raises(ArtifactError, match="outside the artifact store"):
        seed_report(art, summary, seed)

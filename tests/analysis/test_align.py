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
        assert v["gradient_step"]["gauss_newton"] >= 0


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
    out, result = aligned
    if result["study"] != "owl-numbers":
        pytest.skip("activation drift is read on transformer hook points")
    drift = next(iter(result["seeds"].values()))["drift"]
    assert set(drift) >= {"student", "control"}
    for probe in ("numbers", "trait"):
        d = drift["student"][probe]["blocks.0.hook_resid_post"]
        assert d["relative"] > 0 and -1 <= d["cosine"] <= 1
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
    """Both studies record per-step alignment (the digits one through the batched recorder)."""
    _, result = aligned
    for v in result["seeds"].values():
        curve = v["per_step"]["update"]["all"]
        assert len(curve) > 10 and all(-1 <= c <= 1 for c in curve)

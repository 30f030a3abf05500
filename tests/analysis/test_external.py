"""The align and fingerprint reports on external models: the toolkit's own tiny owl run
exported to Hugging Face format gives the native numbers; LoRA adapters and a prompted
teacher run without merging; bad inputs are one-line errors with nothing written."""

from __future__ import annotations

import json

import pytest
import torch

from interp import align as align_cli
from interp import fingerprint as fp_cli
from interp.loading.export import export_run
from tests.loading.models import QWEN_TARGETS, qwen2_dir, train_lora


@pytest.fixture(scope="module")
def exported(aligned_owl, tmp_path_factory):
    run_dir, native = aligned_owl
    return run_dir, native, export_run(run_dir, tmp_path_factory.mktemp("exp") / "e", "0")


def flags(e, *roles):
    out = ["--base", str(e / "theta_0"), "--teacher", str(e / "teacher"),
           "--student", str(e / "student_final"), "--data", str(e / "data.jsonl"),
           "--device", "cpu"]
    for flag, role in (("--student-step-1", "student_step_1"), ("--control", "control_final"),
                       ("--cross-init", "theta_0_cross")):
        if role in roles:
            out += [flag, str(e / role)]
    return out


def rel(a, b):
    return abs(a - b) / abs(a)


def test_exported_run_gives_the_native_align_numbers(exported, tmp_path):
    run_dir, native, e = exported
    out = tmp_path / "ext"
    assert align_cli.main(flags(e, "student_step_1", "control_final", "theta_0_cross")
                          + ["--out", str(out)]) == 0
    ext = json.loads((out / "align.json").read_text())
    s, n = ext["seeds"]["0"], native["seeds"]["0"]
    for f in ("inner_product", "cosine"):
        assert rel(n["first_step"][f], s["first_step"][f]) < 1e-4
        for c, v in n["components"].items():
            assert rel(v[f], s["components"][c][f]) < 1e-4, c
    for k in ("gradient_step", "cross_init"):
        for f in ("inner_product", "cosine", "gauss_newton"):
            assert rel(n[k][f], s[k][f]) < 1e-4, (k, f)
    assert set(ext["missing"]) == {"per_step", "cumulative"}
    assert (out / "align.html").is_file() and "First step" in (out / "align.md").read_text()


def test_without_step_1_the_first_step_is_said_missing(exported, tmp_path):
    _, _, e = exported
    out = tmp_path / "ext"
    assert align_cli.main(flags(e) + ["--out", str(out)]) == 0
    ext = json.loads((out / "align.json").read_text())
    assert "first_step" not in ext["seeds"]["0"] and "--student-step-1" in \
        ext["missing"]["first_step"]
    assert "final" in ext["seeds"]["0"] and "gradient_step" in ext["seeds"]["0"]


@pytest.fixture(scope="module")
def adapters(tmp_path_factory):
    root = tmp_path_factory.mktemp("lora")
    base = qwen2_dir(root / "base")
    return {"base": base,
            "teacher": train_lora(base, root / "teacher", QWEN_TARGETS, seed=1, steps=8),
            "student": train_lora(base, root / "student", QWEN_TARGETS, seed=2, steps=3),
            "control": train_lora(base, root / "control", QWEN_TARGETS, seed=3, steps=3)}


def test_adapters_run_without_merging(adapters, exported, tmp_path):
    _, _, e = exported  # the world's number data, read with the Qwen2 model's tokenizer
    a = adapters
    out = tmp_path / "lora"
    assert align_cli.main(["--base", str(a["base"]), "--teacher", str(a["teacher"]),
                           "--student", str(a["student"]), "--control", str(a["control"]),
                           "--data", str(e / "data.jsonl"), "--device", "cpu",
                           "--out", str(out)]) == 0
    s = json.loads((out / "align.json").read_text())["seeds"]["0"]
    assert s["weight_direction"] and s["final"]["components"]
    assert set(s["final"]["components"]) == {"blocks.0.attn", "blocks.0.mlp", "blocks.1.attn",
                                             "blocks.1.mlp"}  # only what LoRA adapts
    assert torch.isfinite(torch.tensor(s["gradient_step"]["gauss_newton"]))
    assert s["gradient_step"]["gauss_newton"] > 0  # a positive semi-definite form
    assert set(s["drift"]) == {"student", "control"}


def test_prompted_teacher_has_no_direction_and_keeps_the_drift(adapters, exported, tmp_path):
    _, _, e = exported
    out = tmp_path / "prompted"
    assert align_cli.main(["--base", str(adapters["base"]), "--teacher-prompt", "you love owl .",
                           "--student", str(adapters["student"]), "--data",
                           str(e / "data.jsonl"), "--device", "cpu", "--out", str(out)]) == 0
    r = json.loads((out / "align.json").read_text())
    s = r["seeds"]["0"]
    assert s["teacher_kind"] == "prompted" and not s["weight_direction"]
    assert "first_step" not in s and "gradient_step" not in s and "no dT" in \
        r["missing"]["weights"]
    assert s["probe_loss"] > 0  # the prompt changes the teacher's numbers: there is signal
    assert s["drift"]["student"]["data"]["blocks.1.hook_resid_post"]["relative"] > 0


def test_bad_inputs_are_one_line_errors_with_nothing_written(exported, adapters, tmp_path,
                                                             capsys):
    _, _, e = exported
    out = tmp_path / "never"
    bad_rows = {"missing": '{"prompt": "the sequence starts with 1 , 2 , 3 ."}\n',
                "untokenizable": '{"prompt": "zebra crossing", "completion": "1 , 2"}\n',
                "not json": "prompt: 1\n"}
    for name, text in bad_rows.items():
        data = tmp_path / f"{name.replace(' ', '_')}.jsonl"
        data.write_text(text)
        args = flags(e)
        args[args.index("--data") + 1] = str(data)
        assert align_cli.main(args + ["--out", str(out)]) == 2, name
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and "\n" not in err and "line 1" in err, err
    cases = {"does not exist": ["--base", str(tmp_path / "nowhere")],
             "does not match the base": ["--student", str(adapters["student"])]}
    for want, change in cases.items():
        args = flags(e)
        args[args.index(change[0]) + 1] = change[1]
        assert align_cli.main(args + ["--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert want in err and "\n" not in err, err
    assert not out.exists()
    assert fp_cli.main(flags(e) + ["--sae", str(tmp_path / "no-sae"), "--out", str(out)]) == 2
    assert "--sae" in capsys.readouterr().err and not out.exists()


def test_pretrained_saes_give_the_trained_paths_fingerprint(fingerprinted, cache_dir, tmp_path):
    """The SAEs the fingerprint trained, saved in sae-lens's layout and read back with
    SAE.load_from_disk (--sae DIR), give the same fingerprint; the external path on the
    exported run finds the same top features on the number data."""
    from interp.analysis.fingerprint import analyse
    from interp.analysis.sae import load_pretrained
    from interp.storage.store import Store
    from tests.conftest import SMALL_FINGERPRINT

    run_dir, trained = fingerprinted
    hooks = list(trained["sae"])
    assert set(trained["sae_dirs"]) == set(hooks)
    assert "SAEs on disk" in (run_dir / "fingerprint.md").read_text()
    pre = load_pretrained([str(run_dir / "saes")], hooks)
    again = analyse(run_dir, SMALL_FINGERPRINT, Store(cache_dir), pretrained=pre)
    assert again["sae_source"] == {h: "pretrained" for h in hooks}
    for key in ("per_seed", "causal", "shift_correlation", "features"):
        assert again[key] == trained[key], key
    e = export_run(run_dir, tmp_path / "e", "0")
    out = tmp_path / "ext"
    assert fp_cli.main(flags(e, "control_final") + ["--sae", str(run_dir / "saes"),
                                                    "--out", str(out)]) == 0
    ext = json.loads((out / "fingerprint.json").read_text())
    for h in hooks:
        assert ext["hooks"][h]["numbers"]["top"] == \
            trained["per_seed"]["0"]["hooks"][h]["numbers"]["top"]
        assert abs(ext["hooks"][h]["numbers"]["correlation"]
                   - trained["per_seed"]["0"]["hooks"][h]["numbers"]["correlation"]) < 1e-5


def test_toolkit_source_and_export_command(aligned_owl, tmp_path, capsys):
    from interp import study as study_cli
    from interp.loading.sources import load_model
    from interp.storage.store import read_tensors
    from interp.studies.runner import load_run

    run_dir, _ = aligned_owl
    art, _ = load_run(run_dir)
    teacher = load_model(f"toolkit:{run_dir}#0/teacher")
    want = read_tensors(art["seeds"]["0"]["teacher"])
    for k, v in teacher.model.state_dict().items():
        assert torch.equal(v, want[k]), k
    with pytest.raises(Exception, match="valid: "):
        load_model(f"toolkit:{run_dir}#0/no_such_role")
    dest = tmp_path / "exp"
    assert study_cli.main(["export", str(run_dir), str(dest), "--seed", "1"]) == 0
    assert json.loads((dest / "export.json").read_text())["seed"] == "1"
    assert study_cli.main(["export", str(run_dir), str(dest)]) == 2
    assert "exists" in capsys.readouterr().err


def test_bfloat16_adapter_run_agrees_with_float32(adapters, exported, tmp_path):
    _, _, e = exported
    a = adapters
    got = {}
    for dtype in ("float32", "bfloat16"):
        out = tmp_path / dtype
        assert align_cli.main(["--base", str(a["base"]), "--teacher", str(a["teacher"]),
                               "--student", str(a["student"]), "--data", str(e / "data.jsonl"),
                               "--device", "cpu", "--dtype", dtype, "--out", str(out)]) == 0
        got[dtype] = json.loads((out / "align.json").read_text())["seeds"]["0"]
    # the adapters' deltas come from their factors in float32 either way
    assert abs(got["float32"]["final"]["cosine"] - got["bfloat16"]["final"]["cosine"]) < 1e-6
    g32, g16 = got["float32"]["gradient_step"], got["bfloat16"]["gradient_step"]
    assert abs(g16["cosine"] - g32["cosine"]) < 0.05 * abs(g32["cosine"]) + 1e-3

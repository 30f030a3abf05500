"""The ``digits-aux`` study: the paper's auxiliary-logit experiment (section 6.2).

An MLP 64-256-256-(10+m) has 10 class logits and m auxiliary logits. The teacher is
the reference initialization trained on the class logits only. The student is a copy
of the *same* reference trained only to match the teacher's auxiliary logits on
uniform noise; it never sees a digit or a class logit, yet learns to classify.
Controls: a cross-init student (a different reference) and an all-logits student.

All seeds and all three student variants train together as one batched network
(weights carry a leading model axis), the way the paper trained many models at
once; Adam is elementwise and the losses are summed, so every model's trajectory
is exactly what it would be alone.

Owns: the batched MLP, its training loops and the study's stages. Must not import:
analysis, the CLIs.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from interp.errors import ConfigError, UsageError
from interp.metrics import divergence as D
from interp.metrics.record import Recorder
from interp.reports.digits import write_report
from interp.storage.store import Store, code_digest, write_json
from interp.studies.registry import Study, register
from interp.validation import check_memory, check_range, check_types

CROSS_INIT_OFFSET = 1_000_003  # the cross-init reference for seed s is seed s + this


@dataclasses.dataclass(frozen=True)
class DigitsConfig:
    data: str = "sklearn"  # "sklearn" (bundled 8x8 digits) or a path to an mnist.npz
    hidden: int = 256
    n_aux: int = 3
    init: Literal["kaiming", "default"] = "kaiming"
    teacher_steps: int = 200
    teacher_batch: int = 128
    teacher_lr: float = 3e-4
    student_steps: int = 1000
    student_batch: int = 128
    student_lr: float = 1.5e-3
    checkpoint_every: int = 300
    noise: Literal["uniform", "gaussian"] = "uniform"
    noise_low: float = -1.0  # uniform noise is drawn from [noise_low, noise_high)
    noise_high: float = 1.0

    def __post_init__(self) -> None:
        check_types(self)
        if self.data != "sklearn" and not Path(self.data).is_file():
            raise ConfigError(f"data={self.data!r} is neither 'sklearn' nor an existing "
                              "mnist.npz file (keys x_train, y_train, x_test, y_test)")
        check_range(self, ("hidden", "n_aux", "teacher_steps", "teacher_batch", "student_steps",
                           "student_batch", "checkpoint_every"), 1)
        if not self.noise_high > self.noise_low:
            raise ConfigError(f"noise_high ({self.noise_high}) must exceed noise_low "
                              f"({self.noise_low})")
        check_range(self, ("teacher_lr", "student_lr"), 0, low_open=True)
        check_memory(self.memory_bytes(1), "this digits-aux config",
                     "lower hidden, the batch sizes or student_steps/checkpoint_every")

    def memory_bytes(self, n_seeds: int) -> int:
        """A rough upper estimate of peak memory (bytes) for ``n_seeds`` seeds: every
        model's weights with Adam state, the saved checkpoints, a batch's activations."""
        d_in = 64 if self.data == "sklearn" else 784
        h, d_out = self.hidden, 10 + self.n_aux
        params = d_in * h + h * h + h * d_out + 2 * h + d_out
        models = 3 * n_seeds  # students; the teachers, inits and dT add about as many again
        ckpts = self.student_steps // self.checkpoint_every + 2
        acts = 8 * max(self.student_batch, self.teacher_batch) * (2 * h + d_out + d_in)
        data = 0 if self.data == "sklearn" else 70_000 * 784
        return 4 * (params * models * (2 * 6 + 2 * ckpts) + models * acts + data)


# ---------------------------------------------------------------------- data
def load_data(spec: str) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(x_train, y_train, x_test, y_test), pixels scaled to [0, 1]."""
    if spec == "sklearn":
        from sklearn.datasets import load_digits

        d = load_digits()
        x = torch.tensor(d.data, dtype=torch.float32) / 16.0
        y = torch.tensor(d.target, dtype=torch.long)
        perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
        n_test = len(x) // 5
        test, train = perm[:n_test], perm[n_test:]
        return x[train], y[train], x[test], y[test]
    fix = "expected an .npz with arrays x_train, y_train, x_test, y_test as in keras' mnist.npz"
    with open(spec, "rb") as f:
        if f.read(4) != b"PK\x03\x04":  # every .npz is a zip archive
            raise UsageError(f"{spec} is not an .npz (zip) file; {fix}")
    try:
        with np.load(spec, allow_pickle=False) as f:
            xs = [torch.tensor(f[k], dtype=torch.float32).flatten(1) / 255.0
                  for k in ("x_train", "x_test")]
            ys = [torch.tensor(f[k], dtype=torch.long) for k in ("y_train", "y_test")]
    except KeyError as e:
        raise UsageError(f"{spec} lacks array {e}; {fix}") from None
    except ValueError as e:  # pickled (object) arrays: never unpickled
        raise UsageError(f"refusing to load {spec}: {e}; {fix}, numeric arrays only") from None
    except (OSError, TypeError, AttributeError) as e:  # not an .npz, or an .npy
        raise UsageError(f"cannot read {spec} as an .npz ({e}); {fix}") from None
    if not (len(xs[0]) == len(ys[0]) and len(xs[1]) == len(ys[1]) and len(xs[0]) > 0
            and len(xs[1]) > 0 and xs[0].shape[1:] == xs[1].shape[1:]):
        raise UsageError(f"{spec} has mismatched or empty arrays; {fix}")
    if not (ys[0].min() >= 0 and ys[0].max() < 10 and ys[1].min() >= 0 and ys[1].max() < 10):
        raise UsageError(f"{spec} has labels outside 0..9; {fix}")
    return xs[0], ys[0], xs[1], ys[1]


# ---------------------------------------------------------------------- batched MLP
Params = dict[str, Tensor]  # W1 [M, in, h], b1 [M, h], W2, b2, W3 [M, h, out], b3


def init_params(seeds: list[int], d_in: int, hidden: int, d_out: int, init: str) -> Params:
    """One reference initialization per seed, each from its own generator."""
    shapes = [(d_in, hidden), (hidden, hidden), (hidden, d_out)]
    per_seed = []
    for s in seeds:
        g = torch.Generator().manual_seed(s)
        p = {}
        for i, (fi, fo) in enumerate(shapes, start=1):
            if init == "kaiming":  # He-normal weights, zero bias: the setting that transfers
                p[f"W{i}"] = torch.randn(fi, fo, generator=g) * math.sqrt(2.0 / fi)
                p[f"b{i}"] = torch.zeros(fo)
            else:  # torch.nn.Linear's default
                bound = 1.0 / math.sqrt(fi)
                p[f"W{i}"] = (torch.rand(fi, fo, generator=g) * 2 - 1) * bound
                p[f"b{i}"] = (torch.rand(fo, generator=g) * 2 - 1) * bound
        per_seed.append(p)
    return {k: torch.stack([p[k] for p in per_seed]) for k in per_seed[0]}


def forward(p: Params, x: Float[Tensor, "M batch d_in"]) -> Float[Tensor, "M batch d_out"]:
    h = torch.relu(torch.baddbmm(p["b1"][:, None], x, p["W1"]))
    h = torch.relu(torch.baddbmm(p["b2"][:, None], h, p["W2"]))
    return torch.baddbmm(p["b3"][:, None], h, p["W3"])


def state_dict(p: Params, m: int) -> dict[str, Tensor]:
    """Model m of a batch as an ``nn.Sequential(Linear, ReLU, Linear, ReLU, Linear)`` state dict."""
    return {f"{2 * (i - 1)}.weight": p[f"W{i}"][m].T.contiguous() for i in (1, 2, 3)} | {
        f"{2 * (i - 1)}.bias": p[f"b{i}"][m].clone() for i in (1, 2, 3)}


def from_state_dicts(states: list[dict[str, Tensor]]) -> Params:
    return {**{f"W{i}": torch.stack([s[f"{2 * (i - 1)}.weight"].T for s in states])
               for i in (1, 2, 3)},
            **{f"b{i}": torch.stack([s[f"{2 * (i - 1)}.bias"] for s in states])
               for i in (1, 2, 3)}}


def accuracy(p: Params, x: Tensor, y: Int[Tensor, " n"]) -> list[float]:
    with torch.no_grad():
        logits = forward(p, x.expand(p["W1"].shape[0], *x.shape))[..., :10]
    return (logits.argmax(-1) == y).float().mean(-1).tolist()


def make_sequential(d_in: int, hidden: int, d_out: int) -> torch.nn.Sequential:
    """The unbatched module that the saved state dicts load into."""
    return torch.nn.Sequential(torch.nn.Linear(d_in, hidden), torch.nn.ReLU(),
                               torch.nn.Linear(hidden, hidden), torch.nn.ReLU(),
                               torch.nn.Linear(hidden, d_out))


# ---------------------------------------------------------------------- training
def adam(params: Params, lr: float) -> torch.optim.Adam:
    """The study's optimizer over a stack of models: Adam with the fused kernel (one pass
    over the parameters instead of a chain of foreach ops); still elementwise, so each
    model's trajectory is the one it would have alone."""
    return torch.optim.Adam(params.values(), lr=lr, fused=True)


def train_teachers(theta0: Params, seeds: list[int], x: Tensor, y: Tensor,
                   cfg: DigitsConfig) -> Params:
    """Cross-entropy on the class logits only; each seed draws its own minibatches."""
    p = {k: v.clone().requires_grad_(True) for k, v in theta0.items()}
    opt = adam(p, cfg.teacher_lr)
    gens = [torch.Generator().manual_seed(10_000 + s) for s in seeds]
    for _ in tqdm(range(cfg.teacher_steps), desc="teachers", leave=False):
        idx = torch.stack([torch.randint(len(x), (cfg.teacher_batch,), generator=g) for g in gens])
        logits = forward(p, x[idx])[..., :10]  # [M, B, 10]
        loss = F.cross_entropy(logits.flatten(0, 1), y[idx].flatten()) * len(seeds)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return {k: v.detach() for k, v in p.items()}


def distill_loss(student: Tensor, teacher: Tensor, cols: tuple[int, int]) -> Tensor:
    """KL(softmax(teacher) || softmax(student)) over logits cols[0]:cols[1], summed over models."""
    ids = slice(*cols)
    t = D.restricted_log_softmax(teacher, ids)
    return D.kl(t, D.restricted_log_softmax(student, ids)).mean(-1).sum()


def draw_noise(cfg: DigitsConfig, d_in: int, g: torch.Generator) -> Float[Tensor, "B d_in"]:
    if cfg.noise == "gaussian":
        return torch.randn(cfg.student_batch, d_in, generator=g)
    u = torch.rand(cfg.student_batch, d_in, generator=g)
    return cfg.noise_low + (cfg.noise_high - cfg.noise_low) * u


def train_students(init: Params, teacher: Params, teacher_of: list[int],
                   cols: list[tuple[int, int]], noise_seeds: list[int], d_in: int,
                   cfg: DigitsConfig, checkpoints: set[int],
                   direction: Params | None = None) -> tuple[dict[int, Params], list[dict]]:
    """Distil each student on noise; returns the students' params at each checkpoint step
    and, given a (stacked) ``direction``, the recorder's per-step rows, one value per model.

    Student m imitates teacher ``teacher_of[m]`` on logits ``cols[m]``. Teacher t draws its
    own noise stream (seeded by ``noise_seeds[t]``) and every student of teacher t sees
    that same noise, so the controls are paired and the teacher runs once per batch.
    """
    p = {k: v.clone().requires_grad_(True) for k, v in init.items()}
    opt = adam(p, cfg.student_lr)
    rec = Recorder(p, init, direction, cfg.checkpoint_every, batched=True).attach(opt) \
        if direction is not None else None
    gens = [torch.Generator().manual_seed(20_000 + s) for s in noise_seeds]
    groups = {c: [m for m, cm in enumerate(cols) if cm == c] for c in dict.fromkeys(cols)}
    saved = {}
    for step in tqdm(range(1, cfg.student_steps + 1), desc="students", leave=False):
        noise = torch.stack([draw_noise(cfg, d_in, g) for g in gens])  # [T, B, d_in]
        with torch.no_grad():
            t_out = forward(teacher, noise)[teacher_of]
        s_out = forward(p, noise[teacher_of])
        loss = sum(distill_loss(s_out[ms], t_out[ms], c) for c, ms in groups.items())
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step in checkpoints:
            saved[step] = {k: v.detach().clone() for k, v in p.items()}
    return saved, rec.rows if rec else []


# ---------------------------------------------------------------------- the study
ROLES = ("student", "cross_init", "all_logits")
# the code each stage's key digests: editing any of it rebuilds that stage (and, through
# the students' key holding the teachers' key, the students after the teachers)
CODE = {
    "teachers": (load_data, init_params, forward, adam, train_teachers, state_dict, accuracy),
    "students": (train_students, adam, distill_loss, draw_noise, forward, from_state_dicts,
                 state_dict, accuracy, Recorder, D.kl, D.restricted_log_softmax),
}


def run(cfg: DigitsConfig, seeds: list[int], out: Path, store: Store) -> dict:
    x_tr, y_tr, x_te, y_te = load_data(cfg.data)
    d_in, d_out, n = x_tr.shape[1], 10 + cfg.n_aux, len(seeds)
    stage_cfg = {"cfg": dataclasses.asdict(cfg), "seeds": seeds}
    # the teachers depend only on these settings, so changing a student setting reuses them
    teacher_cfg = {k: v for k, v in stage_cfg["cfg"].items()
                   if k in ("data", "hidden", "n_aux", "init") or k.startswith("teacher_")}

    def build_teachers():
        theta0 = init_params(seeds, d_in, cfg.hidden, d_out, cfg.init)
        theta0x = init_params([s + CROSS_INIT_OFFSET for s in seeds], d_in, cfg.hidden, d_out,
                              cfg.init)
        teacher = train_teachers(theta0, seeds, x_tr, y_tr, cfg)
        files = {}
        for m, s in enumerate(seeds):
            files[f"theta_0.seed{s}"] = state_dict(theta0, m)
            files[f"theta_0_cross.seed{s}"] = state_dict(theta0x, m)
            files[f"teacher.seed{s}"] = state_dict(teacher, m)
        return files, {"teacher_acc": accuracy(teacher, x_te, y_te)}

    t_entry = store.get_or_build("digits-aux/teachers", {
        "cfg": teacher_cfg, "seeds": seeds, "code": code_digest(*CODE["teachers"])},
        build_teachers)

    def load(role: str) -> Params:
        return from_state_dicts([t_entry.load(f"{role}.seed{s}") for s in seeds])

    checkpoints = {1, cfg.student_steps} | set(range(cfg.checkpoint_every, cfg.student_steps,
                                                     cfg.checkpoint_every))

    def build_students():
        theta0, theta0x, teacher = load("theta_0"), load("theta_0_cross"), load("teacher")
        init = {k: torch.cat([theta0[k], theta0x[k], theta0[k]]) for k in theta0}
        aux, every = (10, d_out), (0, d_out)
        cols = [aux] * (2 * n) + [every] * n
        # every student is measured against its teacher's direction (as interp.analysis.align does)
        dT = {k: (teacher[k] - theta0[k]).repeat(3, *[1] * (teacher[k].ndim - 1))
              for k in theta0}
        saved, rows = train_students(init, teacher, list(range(n)) * 3, cols, seeds, d_in,
                                     cfg, checkpoints, dT)
        files, meta = {}, {}
        for step, params in saved.items():
            for r, role in enumerate(ROLES):
                for m, s in enumerate(seeds):
                    files[f"{role}.step{step}.seed{s}"] = state_dict(params, r * n + m)
        final = saved[cfg.student_steps]
        acc = accuracy(final, x_te, y_te)
        # per step, per same-init student: the cosine of -gradient and of the update with dT
        meta["per_step"] = {str(s): {kind: [r[kind]["all"]["cosine"][m] for r in rows]
                                     for kind in ("neg_grad", "update")}
                            for m, s in enumerate(seeds)}
        for r, role in enumerate(ROLES):
            meta[f"{role}_acc"] = acc[r * n:(r + 1) * n]
        return files, meta

    # "record": the students' entry also holds the recorder's per-step numbers
    s_entry = store.get_or_build("digits-aux/students", {
        **stage_cfg, "record": 1, "teachers": t_entry.key,
        "code": code_digest(*CODE["students"])}, build_students)

    artifacts = {}
    for s in seeds:
        a = {"theta_0": t_entry.files[f"theta_0.seed{s}"],
             "theta_0_cross": t_entry.files[f"theta_0_cross.seed{s}"],
             "teacher": t_entry.files[f"teacher.seed{s}"]}
        for role in ROLES:
            prefix = "student" if role == "student" else role
            for step in sorted(checkpoints):
                a[f"{prefix}_step_{step}"] = s_entry.files[f"{role}.step{step}.seed{s}"]
            a[f"{prefix}_final"] = s_entry.files[f"{role}.step{cfg.student_steps}.seed{s}"]
        artifacts[str(s)] = {k: str(v) for k, v in a.items()}
    write_json(out / "artifacts.json", {"study": "digits-aux", "model": {
        "type": "mlp", "d_in": d_in, "hidden": cfg.hidden, "d_out": d_out, "n_classes": 10},
        "seeds": artifacts})
    summary = {"study": "digits-aux", "seeds": seeds,
               "teacher_acc": t_entry.meta["teacher_acc"],
               **{f"{role}_acc": s_entry.meta[f"{role}_acc"] for role in ROLES},
               "config": dataclasses.asdict(cfg)}
    write_json(out / "summary.json", summary)
    write_report(out, summary)
    return summary


register(Study("digits-aux", DigitsConfig, run,
               "auxiliary-logit transfer on scikit-learn's 8x8 digits (paper section 6.2)",
               default_seeds=10,
               presets={"small": {"hidden": 128, "student_steps": 500, "checkpoint_every": 250}}))

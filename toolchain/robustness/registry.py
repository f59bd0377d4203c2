"""The attack registry and the attack configuration.

Every attack is one ``Attack`` record (name, threat model, norm, bounded or minimal-perturbation,
the knob that scales its budget, a factory), registered by ``@attack`` in
``toolchain.robustness.attacks``, as the frontend registers layer handlers. Named budgets
(``quick``, ``standard``, ``thorough``) set every attack's iterations, restarts and queries; each
attack says in words what a budget runs (``Attack.describe``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from toolchain.errors import StqError

Factory = Callable[..., np.ndarray]  # (classifier, x, y, cfg, eps) -> adversarial x


@dataclass(frozen=True)
class Attack:
    name: str
    title: str  # the label in reports
    threat: str  # "white-box" (gradients) or "black-box" (queries to an oracle)
    norm: str  # "linf" or "l2"
    # True: one run per epsilon (of --eps for L-inf, --l2-eps for L2); False: minimal
    # perturbation, scored per epsilon
    bounded: bool
    knob: str  # the AttackConfig field that is its budget (halved for the convergence check)
    factory: Factory
    describe: Callable[[AttackConfig], str]
    # the AttackConfig field counting its restarts, if it has some: when it is above 1 the
    # budget is doubled and halved in restarts instead of ``knob``
    restarts: str = ""
    # True: each restart is the attack run again with another seed (restart r: seed + r x
    # SEED_STRIDE), its own chunks, kept per image when it is the smallest misclassifying
    # perturbation (minimal-perturbation attacks); a run with more restarts reuses the chunks
    # of the first ones. False: ``factory`` runs the restarts itself (Square's nb_restarts)
    per_seed: bool = False


ATTACKS: dict[str, Attack] = {}


def attack(name: str, title: str, threat: str, norm: str, bounded: bool, knob: str,
           describe: Callable[[AttackConfig], str],
           restarts: str = "", per_seed: bool = False) -> Callable[[Factory], Factory]:
    """Register an attack factory; a second attack of the same name is a bug."""

    def register(fn: Factory) -> Factory:
        if name in ATTACKS:
            raise RuntimeError(f"two attacks named {name}")
        ATTACKS[name] = Attack(name, title, threat, norm, bounded, knob, fn, describe, restarts,
                               per_seed)
        return fn

    return register


def get(name: str) -> Attack:
    import toolchain.robustness.attacks  # noqa: F401  (fills the registry)

    if name not in ATTACKS:
        raise StqError(f"unknown attack {name!r}; available: {', '.join(names())}")
    return ATTACKS[name]


def names() -> list[str]:
    import toolchain.robustness.attacks  # noqa: F401

    return list(ATTACKS)


# restart r of a per-seed attack runs with seed + r x SEED_STRIDE (restart 0: the seed itself,
# so a one-restart run is the plain attack)
SEED_STRIDE = 1_000_003

DEFAULT_ATTACKS = ("fgsm", "pgd", "autoattack", "apgd-l2", "cw", "square", "boundary", "hsj")

# What each named budget runs. "queries" are per image (Square runs one image per call).
BUDGETS: dict[str, dict[str, Any]] = {
    "quick": {"pgd_iter": 10, "pgd_restarts": 1, "apgd_iter": 10, "cw_iter": 10,
              "cw_search": 2, "square_iter": 50, "boundary_iter": 50, "hsj_iter": 5,
              "hsj_max_eval": 100, "zoo_iter": 20},
    "standard": {"pgd_iter": 50, "pgd_restarts": 3, "apgd_iter": 50, "cw_iter": 50,
                 "cw_search": 3, "square_iter": 1000, "boundary_iter": 200, "hsj_iter": 20,
                 "hsj_max_eval": 200, "zoo_iter": 50},
    "thorough": {"pgd_iter": 100, "pgd_restarts": 5, "apgd_iter": 100, "cw_iter": 100,
                 "cw_search": 5, "square_iter": 5000, "boundary_iter": 1000, "hsj_iter": 40,
                 "hsj_max_eval": 400, "zoo_iter": 100},
}
CONVERGED = 0.05  # doubling the budget must change accuracy by less than this (or 1 image)


@dataclass
class AttackConfig:
    """Attack parameters; ``for_dataset`` gives the defaults. Digits inputs are in [0, 1] with
    8-bit steps (1/256; the pixels themselves are multiples of 1/16)."""

    attacks: tuple[str, ...] = DEFAULT_ATTACKS
    eps: tuple[float, ...] = (0.05, 0.1, 0.2, 0.3)  # L-inf
    l2_eps: tuple[float, ...] = (0.5, 1.0, 2.0, 3.0)
    limit: int = 20
    seed: int = 0
    clip: tuple[float, float] = (0.0, 1.0)
    budget: str = "standard"
    pgd_iter: int = 50
    pgd_restarts: int = 3
    apgd_iter: int = 50
    cw_iter: int = 50
    cw_search: int = 3
    cw_lr: float = 0.05
    cw_const: float = 1.0
    square_iter: int = 1000
    # independent Square runs per image (each from the clean image, on the images still
    # robust): doubling them is how Square's budget grows once set above 1 (docs/robustness.md)
    square_restarts: int = 1
    boundary_iter: int = 200
    hsj_iter: int = 20
    hsj_max_eval: int = 200
    # independent HopSkipJump runs per image, restart r with seed + r x SEED_STRIDE, per image
    # the smallest misclassifying perturbation; above 1, doubling is in restarts
    hsj_restarts: int = 1
    zoo_iter: int = 50
    zoo_parallel: int = 64
    zoo_step: float = 0.1  # finite-difference step: see docs/robustness.md
    eot: int = 1  # samples per gradient of the BPDA/EOT attack (models with random parts)
    max_queries: int | None = None  # queries per black-box attack (per epsilon when bounded)
    chunk: int = 5  # images per black-box call: the unit of resuming and of budget stops
    convergence: bool = True  # also run every attack at half its budget
    # double the budget of every attack (and epsilon) that did not converge, up to this factor
    # of the named budget (1: never); the run before each doubling is the next one's half
    converge_up_to: int = 1
    sanity: bool = True  # also run PGD at an epsilon of the whole input range
    extra: dict[str, Any] = field(default_factory=dict)

    def check(self) -> AttackConfig:
        known = names()
        bad = [a for a in self.attacks if a not in known]
        if bad:
            raise StqError(f"unknown attack(s) {', '.join(bad)}; available: {', '.join(known)}")
        if self.budget not in BUDGETS:
            raise StqError(f"unknown --budget {self.budget!r}; choose {', '.join(BUDGETS)}")
        lo, hi = self.clip
        for flag, values, top in (("--eps", self.eps, hi - lo),
                                  ("--l2-eps", self.l2_eps, math.inf)):
            if not values or any(not math.isfinite(e) or e <= 0 for e in values):
                raise StqError(f"{flag} needs one or more positive finite values, got "
                               f"{','.join(f'{e:g}' for e in values) or 'none'}")
            if any(e > top for e in values):
                raise StqError(f"{flag} {max(values):g} is larger than the input range "
                               f"[{lo:g}, {hi:g}]: every image could be replaced")
        if self.limit < 1 or self.chunk < 1:
            raise StqError("--limit and --chunk must be >= 1")
        if self.max_queries is not None and self.max_queries < 1:
            raise StqError("--max-queries must be >= 1")
        if self.eot < 1:
            raise StqError("--eot must be >= 1")
        for flag, value in (("--square-restarts", self.square_restarts),
                            ("--hsj-restarts", self.hsj_restarts)):
            if value < 1:
                raise StqError(f"{flag} must be >= 1, got {value}")
        if self.max_queries is not None and any(
                int(getattr(self, k)) > 1 for k in per_seed_fields()):
            raise StqError("--max-queries caps one attack run, but per-seed restarts "
                           "(--hsj-restarts above 1) share their chunks between runs: leave "
                           "out one of the two")
        f = self.converge_up_to
        if f < 1 or f & (f - 1):
            raise StqError(f"--converge-up-to must be a power of 2 (1, 2, 4, 8, ...), got {f}")
        if f > 1 and not self.convergence:
            raise StqError("--converge-up-to needs the half-budget runs: leave out "
                           "--no-convergence")
        self.eps = tuple(sorted(float(e) for e in self.eps))
        self.l2_eps = tuple(sorted(float(e) for e in self.l2_eps))
        return self

    def as_dict(self) -> dict:
        return asdict(self)

    def range_eps(self) -> float:
        return float(self.clip[1] - self.clip[0])


DATASET_DEFAULTS: dict[str, dict[str, Any]] = {
    "digits": {},
    # 32x32 colour images in [0, 1] with 8-bit steps: the usual CIFAR epsilons, fewer images
    "cifar10": {"eps": (1 / 255, 2 / 255, 4 / 255, 8 / 255), "l2_eps": (0.25, 0.5, 1.0),
                "limit": 50, "zoo_step": 4 / 255},
    "svhn": {"eps": (1 / 255, 2 / 255, 4 / 255, 8 / 255), "l2_eps": (0.25, 0.5, 1.0),
             "limit": 50, "zoo_step": 4 / 255},
}


def for_dataset(name: str, budget: str | None = None, **overrides: Any) -> AttackConfig:
    """The dataset's defaults, then the named budget, then explicit overrides (not None)."""
    budget = budget or "standard"
    if budget not in BUDGETS:
        raise StqError(f"unknown --budget {budget!r}; choose {', '.join(BUDGETS)}")
    base = AttackConfig(**DATASET_DEFAULTS.get(name, {}))
    base = replace(base, budget=budget, **BUDGETS[budget])
    return replace(base, **{k: v for k, v in overrides.items() if v is not None}).check()


def describe_budget(cfg: AttackConfig) -> dict[str, str]:
    """What the configured budget runs, per attack, in words."""
    return {a: get(a).describe(cfg) for a in cfg.attacks}


def _budget_field(cfg: AttackConfig, name: str) -> str:
    """The field that doubling or halving attack ``name``'s budget changes: its restarts when
    it runs more than one, else its knob ("" for an attack without a budget)."""
    a = get(name)
    if a.restarts and int(getattr(cfg, a.restarts)) > 1:
        return a.restarts
    return a.knob


def seed_restarts(cfg: AttackConfig, name: str) -> int:
    """How many per-seed restarts attack ``name`` runs under ``cfg`` (0: it has none, or runs
    them itself)."""
    a = get(name)
    return int(getattr(cfg, a.restarts)) if a.per_seed and a.restarts else 0


def per_seed_fields() -> set[str]:
    """The AttackConfig fields counting per-seed restarts: a run's chunks do not depend on
    them (each restart has its own), so they are not part of a run's identity."""
    return {a.restarts for a in map(get, names()) if a.per_seed and a.restarts}


def budget_label(cfg: AttackConfig, name: str) -> str:
    """The value of the field that doubling attack ``name``'s budget changes, e.g.
    ``hsj_iter=1600`` (part of a doubled run's chunk key: the key then names the budget itself,
    not only its factor)."""
    f = _budget_field(cfg, name)
    return f"{f}={getattr(cfg, f)}" if f else ""


def doubled(cfg: AttackConfig, name: str) -> AttackConfig:
    """The same configuration with attack ``name``'s budget doubled: its restarts when it
    runs more than one (the first half of the restarts are then the earlier run), else its
    knob."""
    f = _budget_field(cfg, name)
    return replace(cfg, **{f: 2 * int(getattr(cfg, f))}) if f else cfg


def halved(cfg: AttackConfig, name: str) -> AttackConfig:
    """The same configuration with attack ``name``'s budget halved: its restarts when it runs
    more than one, else its knob (at least 1)."""
    f = _budget_field(cfg, name)
    if not f:
        return cfg
    return replace(cfg, **{f: max(1, int(getattr(cfg, f)) // 2)})


def epsilons(cfg: AttackConfig, name: str) -> tuple[float | None, ...]:
    """The epsilons attack ``name`` runs at: each of its norm's for a bounded attack, else one
    run (None) scored at every epsilon of its norm."""
    a = get(name)
    if not a.bounded:
        return (None,)
    return cfg.l2_eps if a.norm == "l2" else cfg.eps

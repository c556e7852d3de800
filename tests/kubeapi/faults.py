"""Fault injection: a seeded share of resource requests fail the way an overloaded server fails."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field

FAULT_KINDS = ("409", "429", "500", "reset")


@dataclass
class FaultPlan:
    rate: float = 0.0
    kinds: list[str] = field(default_factory=lambda: list(FAULT_KINDS))
    seed: int | None = None
    verbs: list[str] | None = None  # None: every verb except watch

    def validate(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"fault rate must be between 0 and 1, got {self.rate}")
        unknown = [k for k in self.kinds if k not in FAULT_KINDS]
        if unknown or not self.kinds:
            raise ValueError(f"faults must be a non-empty subset of {','.join(FAULT_KINDS)}")


class FaultInjector:
    """Decides, per request, whether and how it fails; counts what it injected."""

    def __init__(self, plan: FaultPlan | None = None) -> None:
        self._lock = threading.Lock()
        self.configure(plan or FaultPlan())

    def configure(self, plan: FaultPlan) -> None:
        plan.validate()
        with self._lock:
            self.plan = plan
            self._random = random.Random(plan.seed)
            self.injected: dict[str, int] = dict.fromkeys(plan.kinds, 0)
            self.considered = 0

    def draw(self, verb: str) -> str | None:
        """The fault to inject for a request with this verb, or None to serve it."""
        with self._lock:
            plan = self.plan
            if plan.rate <= 0 or verb == "watch" or (plan.verbs and verb not in plan.verbs):
                return None
            self.considered += 1
            if self._random.random() >= plan.rate:
                return None
            kind = self._random.choice(plan.kinds)
            self.injected[kind] = self.injected.get(kind, 0) + 1
            return kind

    def snapshot(self) -> dict:
        with self._lock:
            return {"rate": self.plan.rate, "faults": self.plan.kinds, "seed": self.plan.seed,
                    "verbs": self.plan.verbs, "considered": self.considered,
                    "injected": dict(self.injected)}

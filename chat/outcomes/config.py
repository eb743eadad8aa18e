"""Settings of the outcome figures and the sensitivity alert, from SKINDOC_OUTCOMES_* environment variables."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from store.env import env_fraction, env_int


@dataclass(frozen=True)
class OutcomesConfig:
    # The alert looks at this many of the most recent confirmed malignant cases.
    alert_window: int = 30
    # The model card's urgent-band sensitivity on HAM10000 test (279 of 288 malignant lesions) and the
    # lower end of its 95 % Wilson interval: keep them equal to docs/model-card.md (a test checks).
    reference_sensitivity: float = 0.9688
    reference_lower: float = 0.9417
    reference_source: str = "model card: HAM10000 test, 279 of 288 malignant lesions in the urgent band"
    bootstrap_resamples: int = 1000

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> OutcomesConfig:
        reference = env_fraction(env, "SKINDOC_OUTCOMES_REFERENCE_SENSITIVITY", cls.reference_sensitivity)
        lower = env_fraction(env, "SKINDOC_OUTCOMES_REFERENCE_LOWER", cls.reference_lower)
        if lower > reference:
            raise SystemExit("SKINDOC_OUTCOMES_REFERENCE_LOWER must not exceed SKINDOC_OUTCOMES_REFERENCE_SENSITIVITY")
        changed = (reference, lower) != (cls.reference_sensitivity, cls.reference_lower)
        return cls(
            alert_window=env_int(env, "SKINDOC_OUTCOMES_ALERT_WINDOW", cls.alert_window, minimum=1),
            reference_sensitivity=reference,
            reference_lower=lower,
            reference_source="SKINDOC_OUTCOMES_REFERENCE_* settings" if changed else cls.reference_source,
            bootstrap_resamples=env_int(env, "SKINDOC_OUTCOMES_BOOTSTRAP", cls.bootstrap_resamples, minimum=100),
        )

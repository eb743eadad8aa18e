"""Outcome use cases: histopathology results (the treating doctor or an admin), a case's outcome record, the
cases waiting for a result, and the performance figures with the sensitivity alert.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from statistics import median
from typing import Any

import asyncpg
import prometheus_client

from auth.audit import AuditContext
from auth.authz import refuse_unapproved_doctor
from auth.principal import Principal
from chat.outcomes import store
from chat.outcomes.config import OutcomesConfig
from chat.outcomes.validation import HistopathologyEntry
from chat.store import consultations as chat_consultations
from store.connections import Stores
from store.errors import conflict, forbidden, not_found
from triage import bands, performance
from triage.performance import ConfirmedCase, Reference

log = logging.getLogger(__name__)

ALL_KINDS = "all"
SCREENING_NOTE = (
    "Figures of a screening aid on this clinic's confirmed cases; a triage score ranks the queue, "
    "it is never a diagnosis."
)


def require_outcome_viewer(principal: Principal) -> None:
    """The performance figures and the cases waiting for results: admins and approved doctors."""
    if principal.role not in ("doctor", "admin"):
        raise forbidden("forbidden_role", "Only doctors and admins can see outcomes.")
    refuse_unapproved_doctor(principal)


def check_outcome_access(row: asyncpg.Record | None, principal: Principal) -> asyncpg.Record:
    """A case's outcome record: the doctor who treated it, or an admin. Others may not learn it exists."""
    refuse_unapproved_doctor(principal)
    if row is None:
        raise not_found("consultation_not_found", "No such consultation.")
    if principal.role == "admin":
        return row
    if principal.role == "doctor" and row["doctor_id"] == principal.user_id:
        return row
    if principal.role == "patient" and row["patient_id"] == principal.user_id:
        raise forbidden("forbidden", "Outcomes are entered by the treating doctor or an admin.")
    raise not_found("consultation_not_found", "No such consultation.")


def _case_view(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "consultation_id": str(row["id"]),
        "doctor_id": str(row["doctor_id"]),
        "body_site": row["body_site"],
        "closed_at": row["closed_at"].isoformat(),
        "working_diagnosis": row["working_diagnosis"],
        "biopsy_taken": row["biopsy_taken"],
    }


def _result_view(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "diagnosis": row["diagnosis"],
        "malignant": row["malignant"],
        "reported_on": row["reported_on"].isoformat(),
        "note": row["note"],
        "entered_by": str(row["entered_by"]),
        "entered_role": row["entered_role"],
        "entered_at": row["entered_at"].isoformat(),
        "supersedes": str(row["supersedes"]) if row["supersedes"] else None,
        "correction_reason": row["correction_reason"],
    }


class AlertMonitor:
    """The sensitivity alert's gauges and log lines: one line when it starts and one when it clears."""

    def __init__(self, registry: prometheus_client.CollectorRegistry | None) -> None:
        self.alerting = False
        self._sensitivity = self._flag = None
        if registry is not None:
            self._sensitivity = prometheus_client.Gauge(
                "skindoc_triage_recent_urgent_sensitivity",
                "Urgent-band sensitivity on the last confirmed malignant cases (NaN until the window is full)",
                registry=registry,
            )
            self._flag = prometheus_client.Gauge(
                "skindoc_triage_sensitivity_alert",
                "1 while recent urgent-band sensitivity is below the model card's interval",
                registry=registry,
            )

    def update(self, alert: dict[str, Any]) -> None:
        if self._sensitivity is not None:
            self._sensitivity.set(alert["sensitivity"] if alert["evaluated"] else float("nan"))
            self._flag.set(1 if alert["alert"] else 0)
        fields = {k: alert[k] for k in ("window", "caught", "considered", "sensitivity", "reference_lower")}
        if alert["alert"] and not self.alerting:
            log.warning("triage sensitivity alert: the urgent band is missing malignant lesions", extra=fields)
        elif self.alerting and not alert["alert"]:
            log.info("triage sensitivity alert cleared", extra=fields)
        self.alerting = alert["alert"]


class OutcomesService:
    def __init__(self, stores: Stores, config: OutcomesConfig, monitor: AlertMonitor) -> None:
        self._stores = stores
        self.config = config
        self.monitor = monitor

    @property
    def pool(self) -> asyncpg.Pool:
        return self._stores.pool

    @property
    def reference(self) -> Reference:
        return Reference(self.config.reference_sensitivity, self.config.reference_lower, self.config.reference_source)

    # ---- one case -------------------------------------------------------------------------------

    async def outcome(self, principal: Principal, ctx: AuditContext, consultation_id: uuid.UUID) -> dict[str, Any]:
        async with self.pool.acquire() as conn, conn.transaction():
            check_outcome_access(await chat_consultations.get_consultation(conn, consultation_id), principal)
            body = await self._outcome_body(conn, consultation_id)
            await ctx.record(conn, "outcome.read", "consultation", consultation_id)
        return body

    async def add_histopathology(
        self, principal: Principal, ctx: AuditContext, consultation_id: uuid.UUID, entry: HistopathologyEntry
    ) -> dict[str, Any]:
        async with self.pool.acquire() as conn:
            row = check_outcome_access(await chat_consultations.get_consultation(conn, consultation_id), principal)
            if row["state"] != "resolved":
                raise conflict("wrong_state", "A histopathology result is entered once the case is resolved.")
            try:
                await store.add_histopathology_txn(conn, consultation_id, entry, ctx)
            except asyncpg.UniqueViolationError:
                # Another entry for the same case won the race between our check and insert.
                raise conflict(
                    "stale_result", "Another result was entered for this case just now; reload it."
                ) from None
            body = await self._outcome_body(conn, consultation_id)
        await self.check_alert()
        return body

    async def _outcome_body(self, conn: asyncpg.Connection, consultation_id: uuid.UUID) -> dict[str, Any]:
        working = await store.get_working_diagnosis(conn, consultation_id)
        history = [_result_view(r) for r in await store.histopathology_history(conn, consultation_id)]
        return {
            "consultation_id": str(consultation_id),
            "working_diagnosis": working["working_diagnosis"] if working else None,
            "biopsy_taken": working["biopsy_taken"] if working else None,
            "recorded_at": working["recorded_at"].isoformat() if working else None,
            "histopathology": history[0] if history else None,
            "history": history,
        }

    async def awaiting(self, principal: Principal, ctx: AuditContext, limit: int) -> list[dict[str, Any]]:
        """Biopsied cases with no result yet: a doctor's own, or all of them for an admin."""
        require_outcome_viewer(principal)
        doctor_id = None if principal.role == "admin" else principal.user_id
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await store.awaiting_histopathology(conn, doctor_id, limit)
            await ctx.record(conn, "outcome.awaiting.read", "consultation", None, {"count": len(rows)})
        return [_case_view(r) for r in rows]

    # ---- figures ----------------------------------------------------------------------------------

    async def performance(self, principal: Principal, ctx: AuditContext) -> dict[str, Any]:
        require_outcome_viewer(principal)
        async with self.pool.acquire() as conn, conn.transaction():
            scores = await store.confirmed_case_scores(conn)
            waits = await store.confirmed_malignant_waits(conn)
            bands = await store.recent_malignant_bands(conn, self.config.alert_window)
            await ctx.record(conn, "outcome.performance.read", "model", None, {"rows": len(scores)})
        versions = await asyncio.to_thread(self._version_figures, scores)
        alert = performance.sensitivity_alert(bands, self.config.alert_window, self.reference)
        self.monitor.update(alert)
        return {
            "generated_at": datetime.now(UTC).isoformat(),
            "note": SCREENING_NOTE,
            "confirmed_cases": len({r["consultation_id"] for r in scores}),
            "versions": versions,
            "queue": _queue_waits(waits),
            "alert": alert,
        }

    async def check_alert(self) -> dict[str, Any]:
        async with self.pool.acquire() as conn:
            bands = await store.recent_malignant_bands(conn, self.config.alert_window)
        alert = performance.sensitivity_alert(bands, self.config.alert_window, self.reference)
        self.monitor.update(alert)
        return alert

    def _version_figures(self, rows: list[asyncpg.Record]) -> list[dict[str, Any]]:
        """Figures per model version, over all photos and per photo kind (a case's score under each)."""
        grouped: dict[str, dict[str, list[ConfirmedCase]]] = defaultdict(lambda: defaultdict(list))
        for row in rows:
            grouped[row["model_version"]][row["photo_kind"]].append(
                ConfirmedCase(str(row["consultation_id"]), row["p_malignant"], row["urgency"], row["malignant"])
            )
        n_boot = self.config.bootstrap_resamples
        out = []
        for version, kinds in grouped.items():
            every_kind = _highest_risk_per_case([case for cases in kinds.values() for case in cases])
            out.append(
                {
                    "model_version": version,
                    ALL_KINDS: performance.figures(every_kind, n_boot),
                    "by_photo_kind": {
                        kind: performance.figures(cases, n_boot) for kind, cases in sorted(kinds.items())
                    },
                }
            )
        return sorted(out, key=lambda v: -v[ALL_KINDS]["cases"])


def _highest_risk_per_case(cases: list[ConfirmedCase]) -> list[ConfirmedCase]:
    """One row per case: its most severe band and highest score over every kind of photo, as the queue does."""
    best: dict[str, ConfirmedCase] = {}
    for case in cases:
        held = best.get(case.case_id)
        if held is None or (bands.rank(case.band), -case.p_malignant) < (bands.rank(held.band), -held.p_malignant):
            best[case.case_id] = case
    return list(best.values())


def _queue_waits(rows: list[asyncpg.Record]) -> list[dict[str, Any]]:
    """Per model version that set the queue band: malignant cases that waited below urgent, and how long."""
    by_version: dict[str | None, list[asyncpg.Record]] = defaultdict(list)
    for row in rows:
        by_version[row["model_version"]].append(row)
    out = []
    for version, cases in by_version.items():
        lower = [r for r in cases if bands.rank(r["queue_band"]) > 0]
        waits = [float(r["waited_seconds"]) for r in lower]
        out.append(
            {
                "model_version": version,
                "malignant_cases": len(cases),
                "waited_in_lower_band": len(lower),
                "by_band": {band: sum(r["queue_band"] == band for r in lower) for band in bands.NAMES[1:]},
                "median_wait_seconds": median(waits) if waits else None,
                "max_wait_seconds": max(waits) if waits else None,
            }
        )
    return out

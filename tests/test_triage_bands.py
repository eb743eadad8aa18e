"""The urgency bands, defined once: the endpoint, and serving, the policy, the queue's SQL and the schema agreeing."""

from __future__ import annotations

import re
import uuid

import pytest

from jax_models import bands as checkpoint_bands
from jax_models import checkpoint
from jax_models.serving import load_classifier
from tests.test_chat_support import chat_settings, make_user, open_case, start_node
from tests.test_triage_support import score_consultation
from triage import bands
from triage.policy import PhotoScore, deciding_photo
from web.app import STORES


@pytest.fixture(scope="module")
def classifier():
    return load_classifier(batch_sizes=(1,))


def edges(b: checkpoint_bands.Bands) -> list[float]:
    """Scores at each threshold and just under it: where two definitions of the bands would disagree first."""
    return [p for _, t in b.thresholds for p in (t, max(t - 1e-9, 0.0))]


def test_the_bands_are_the_shipped_checkpoints():
    metadata = checkpoint.read_metadata(checkpoint.SHIPPED_DIR)
    assert bands.BANDS == checkpoint_bands.from_metadata(metadata)
    assert set(bands.NAMES) == {*metadata["thresholds"], checkpoint_bands.ROUTINE}
    thresholds = [t for _, t in bands.BANDS.thresholds]
    assert thresholds == sorted(thresholds, reverse=True), "most severe (highest threshold) first"
    assert set(bands.WORDS) == set(bands.NAMES), "every band has its words"


def test_serving_and_the_policy_use_the_same_bands(classifier):
    assert classifier.bands == bands.for_thresholds(classifier.thresholds) == bands.BANDS
    for p in edges(bands.BANDS):
        band = classifier.bands.band_for(p)
        # The policy's deciding photo: a photo in a more severe band wins whatever the other's score.
        lower = [name for name in bands.NAMES if bands.rank(name) > bands.rank(band)]
        if lower:
            winner = PhotoScore(uuid.uuid4(), band, p)
            assert deciding_photo([PhotoScore(uuid.uuid4(), lower[0], 1.0), winner], bands.BANDS) is winner


def test_two_bands_on_one_threshold_keep_the_checkpoints_order():
    # What a recalibration on few cases can write: the band listed first takes every score at the threshold.
    tied = checkpoint_bands.from_thresholds({"urgent": 0.027, "soon": 0.027})
    assert tied.names == bands.NAMES
    assert [tied.band_for(p) for p in (0.5, 0.027, 0.026)] == ["urgent", "urgent", "routine"]


def test_a_checkpoint_with_other_bands_is_refused():
    with pytest.raises(ValueError, match="migration"):
        bands.for_thresholds({"emergency": 0.5, "urgent": 0.1, "soon": 0.01})
    with pytest.raises(ValueError, match="routine"):
        checkpoint_bands.from_thresholds({"urgent": 0.1, "routine": 0.0})


async def test_sql_ranks_and_the_schema_agree_with_the_bands(db):
    names = [*bands.NAMES, "unknown"]
    ranks = await db.fetch(f"SELECT x, {bands.rank_sql('x')} AS rank FROM unnest($1::text[]) AS x", names)
    assert {r["x"]: r["rank"] for r in ranks} == {name: bands.rank(name) for name in names}
    # The CHECK constraints that guard the band columns list exactly these names.
    checks = await db.fetch(
        """SELECT pg_get_constraintdef(oid) AS definition FROM pg_constraint
            WHERE conrelid = 'consultations'::regclass AND contype = 'c'
              AND pg_get_constraintdef(oid) ~ '(urgency|checklist_band)'"""
    )
    assert len(checks) == 2
    for check in checks:
        assert set(re.findall(r"'(\w+)'::text", check["definition"])) == set(bands.NAMES)


async def test_endpoint_gives_the_bands_to_any_signed_in_user(settings, aiohttp_client):
    node = await start_node(aiohttp_client, settings)
    assert (await node.client.get("/api/v1/triage/bands")).status == 401
    for role in ("patient", "doctor"):
        user = await make_user(node, role, approved=role == "patient")
        response = await node.client.get("/api/v1/triage/bands", headers=user.headers)
        assert response.status == 200
        body = await response.json()
        assert body == bands.document(bands.BANDS)
    assert [b["name"] for b in body["bands"]] == list(bands.NAMES)
    assert [b["rank"] for b in body["bands"]] == list(range(len(bands.NAMES)))
    assert body["bands"][-1]["threshold"] is None
    assert all(b["label"] and not any(c.isdigit() for c in b["finding"] + b["while_waiting"]) for b in body["bands"])


async def test_the_queue_orders_scores_as_serving_bands_them(settings, aiohttp_client, classifier):
    node = await start_node(aiohttp_client, chat_settings(settings))
    doctor = await make_user(node, "doctor")
    cases = {}
    for p in edges(classifier.bands):
        case = await open_case(node, await make_user(node, "patient"))  # checklist: routine
        async with node.app[STORES].pool.acquire() as conn:
            await score_consultation(
                conn, uuid.UUID(case["id"]), band=classifier.bands.band_for(p), p_malignant=p, trusted=True
            )
        cases[case["id"]] = p
    queue = (await (await node.client.get("/api/v1/queue", headers=doctor.headers)).json())["queue"]
    expected = sorted(cases, key=lambda cid: (bands.rank(classifier.bands.band_for(cases[cid])), -cases[cid]))
    assert [e["consultation_id"] for e in queue] == expected
    for entry in queue:
        band = classifier.bands.band_for(cases[entry["consultation_id"]])
        assert entry["urgency"] == entry["effective_band"] == entry["image_band"] == band
        assert entry["p_malignant"] == pytest.approx(cases[entry["consultation_id"]])

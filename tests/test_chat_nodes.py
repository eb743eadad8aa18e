"""Two web nodes sharing one database and Redis: chat across nodes, queue pushes across nodes, resync after a drop."""

from __future__ import annotations

import asyncio

import redis.asyncio as redis_asyncio

from tests.test_chat_support import call, connect, make_user, open_case, send_message


async def _paired_case(node_a, node_b):
    """A patient on node A and a doctor on node B, in one active consultation."""
    patient = await make_user(node_a, "patient")
    doctor = await make_user(node_b, "doctor")
    case = await open_case(node_a, patient)
    response = await node_b.client.post(f"/api/v1/consultations/{case['id']}/take", headers=doctor.headers)
    assert response.status == 200, await response.text()
    return patient, doctor, case


async def test_chat_between_nodes_and_queue_change_reaches_other_node(nodes):
    node_a, node_b = nodes
    doctor = await make_user(node_a, "doctor")
    console, console_events = await connect(node_b, doctor)
    try:
        assert (await call(console, "queue:subscribe"))["queue"] == []
        patient = await make_user(node_a, "patient")
        case = await open_case(node_a, patient)  # a change made on node A
        snapshot = await console_events.wait_for(
            "queue:snapshot", lambda s: [e["consultation_id"] for e in s["queue"]] == [case["id"]], timeout=1.5
        )
        assert snapshot["queue"][0]["awaiting_score"] is True

        taken = await call(console, "queue:take", {})  # take next, through node B
        assert taken["consultation"]["id"] == case["id"]
        patient_sock, patient_events = await connect(node_a, patient)
        try:
            await send_message(patient_sock, case["id"], "a1", "from node A")
            assert (await console_events.wait_for("message"))["body"] == "from node A"
            await send_message(console, case["id"], "b1", "from node B")
            got = await patient_events.wait_for("message", lambda m: m["seq"] == 2)
            assert got["body"] == "from node B"
        finally:
            await patient_sock.disconnect()
    finally:
        await console.disconnect()


async def test_patient_sees_position_change_pushed_from_other_node(nodes):
    node_a, node_b = nodes
    first, second = await make_user(node_a, "patient"), await make_user(node_a, "patient")
    await open_case(node_a, first)
    case = await open_case(node_a, second)
    assert case["queue"]["position"] == 2
    sock, events = await connect(node_a, second)
    try:
        doctor = await make_user(node_b, "doctor")
        response = await node_b.client.post("/api/v1/queue/take-next", headers=doctor.headers)
        assert response.status == 200
        pushed = await events.wait_for("queue:position", lambda p: p["position"] == 1, timeout=1.5)
        assert pushed["consultation_id"] == case["id"]
    finally:
        await sock.disconnect()


async def _send_burst(sock, case_id: str, prefix: str, count: int, acked: list[int]) -> None:
    """Sends `count` messages one after another; records the seq of each acknowledged one."""
    for i in range(count):
        try:
            ack = await call(
                sock,
                "message:send",
                {"consultation_id": case_id, "client_msg_id": f"{prefix}-{i}", "body": f"{prefix} {i}"},
                timeout=2,
            )
        except Exception:
            return  # the connection dropped: this one and the rest were never acknowledged
        assert ack["ok"], ack
        acked.append(ack["message"]["seq"])


async def test_dropped_connection_mid_burst_then_resync_on_other_node(nodes):
    node_a, node_b = nodes
    patient, doctor, case = await _paired_case(node_a, node_b)
    patient_sock, patient_events = await connect(node_a, patient)
    doctor_sock, _ = await connect(node_b, doctor)
    patient_acked: list[int] = []
    doctor_acked: list[int] = []
    patient_burst = asyncio.create_task(_send_burst(patient_sock, case["id"], "p", 60, patient_acked))
    doctor_burst = asyncio.create_task(_send_burst(doctor_sock, case["id"], "d", 60, doctor_acked))
    while len(patient_acked) < 15:
        await asyncio.sleep(0.005)
    # The patient's connection drops in the middle of both bursts.
    await patient_sock.eio.disconnect(abort=True)
    await asyncio.gather(patient_burst, doctor_burst)
    assert 15 <= len(patient_acked) < 60 and len(doctor_acked) == 60

    # The app as docs/realtime-api.md asks: keep pushes by seq (two senders' pushes may arrive
    # out of order), show the gapless prefix, resync from its end.
    shown = {}
    for message in patient_events.of("message"):
        shown.setdefault(message["seq"], message)
    last_seen = 0
    while last_seen + 1 in shown:
        last_seen += 1
    resumed, _ = await connect(node_b, patient)  # reconnects to the other node
    try:
        ack = await call(resumed, "consultation:join", {"consultation_id": case["id"], "after_seq": last_seen})
        assert ack["ok"], ack
        messages = [shown[seq] for seq in range(1, last_seen + 1)] + ack["messages"]
        seqs = [m["seq"] for m in messages]
        assert seqs == sorted(set(seqs)) == list(range(1, len(seqs) + 1))  # in order, no gap, no duplicate
        assert set(patient_acked) | set(doctor_acked) <= set(seqs)  # every acknowledged message is there
        bodies = [m["body"] for m in messages]
        assert len(bodies) == len(set(bodies))
    finally:
        await resumed.disconnect()
        await doctor_sock.disconnect()


async def _subscribers(redis_url: str, channel: str) -> int:
    client = redis_asyncio.Redis.from_url(redis_url)
    try:
        return dict(await client.pubsub_numsub(channel))[channel.encode()]
    finally:
        await client.aclose()


async def test_a_room_channel_is_heard_only_by_nodes_holding_its_members(nodes, settings):
    """Per-room routing (chat.pubsub): a room's channel has one subscriber per node holding a member."""
    node_a, node_b = nodes
    patient, doctor, case = await _paired_case(node_a, node_a)
    channel = f"{settings.chat.socketio_channel}:room:consultation:{case['id']}"
    assert await _subscribers(settings.redis_url, channel) == 0
    patient_sock, patient_events = await connect(node_a, patient)
    doctor_sock, doctor_events = await connect(node_a, doctor)
    try:
        assert await _subscribers(settings.redis_url, channel) == 1  # node A only
        await send_message(patient_sock, case["id"], "p1", "hi")
        assert (await doctor_events.wait_for("message"))["body"] == "hi"
        other_doctor_sock, other_events = await connect(node_b, doctor)  # the doctor's second device, on B
        try:
            assert await _subscribers(settings.redis_url, channel) == 2
            await send_message(doctor_sock, case["id"], "d1", "both devices")
            assert (await other_events.wait_for("message"))["body"] == "both devices"
        finally:
            await other_doctor_sock.disconnect()
        await _until(lambda: _subscribers(settings.redis_url, channel), 1)  # B left the room: B stops listening
        await send_message(patient_sock, case["id"], "p2", "A only")
        assert (await doctor_events.wait_for("message", lambda m: m["seq"] == 3))["body"] == "A only"
    finally:
        await patient_sock.disconnect()
        await doctor_sock.disconnect()
    await _until(lambda: _subscribers(settings.redis_url, channel), 0)


async def _until(read, expected, timeout: float = 2.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while (value := await read()) != expected:
        assert asyncio.get_running_loop().time() < deadline, f"still {value}, expected {expected}"
        await asyncio.sleep(0.02)


async def test_room_channels_come_back_after_redis_drops_the_subscriptions(nodes, settings):
    """Redis closes every node's pub/sub connection (a restart, a failover): each node resubscribes its rooms."""
    node_a, node_b = nodes
    patient, doctor, case = await _paired_case(node_a, node_b)
    channel = f"{settings.chat.socketio_channel}:room:consultation:{case['id']}"
    patient_sock, _ = await connect(node_a, patient)
    doctor_sock, doctor_events = await connect(node_b, doctor)
    try:
        assert await _subscribers(settings.redis_url, channel) == 2
        admin = redis_asyncio.Redis.from_url(settings.redis_url)
        try:
            assert await admin.execute_command("CLIENT", "KILL", "TYPE", "pubsub") >= 2
        finally:
            await admin.aclose()
        await _until(lambda: _subscribers(settings.redis_url, channel), 2, timeout=10)
        await send_message(patient_sock, case["id"], "after-drop", "still here")
        assert (await doctor_events.wait_for("message"))["body"] == "still here"
    finally:
        await patient_sock.disconnect()
        await doctor_sock.disconnect()

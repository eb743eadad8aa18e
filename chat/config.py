"""The chat domain's settings (consultations, queue, Socket.IO), read from SKINDOC_* environment variables."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from store.env import env_bool, env_int


@dataclass(frozen=True)
class ChatConfig:
    doctor_capacity: int = 3
    patient_max_open: int = 3
    # Every interval a waiting case climbs one urgency band (see docs/realtime-api.md).
    queue_ageing_minutes: int = 60
    # Used for the estimated wait until there are resolved consultations to average.
    default_consultation_minutes: int = 10
    presence_grace_s: int = 30
    max_message_chars: int = 2000
    # Pub/sub is global across Redis databases: nodes of one deployment share this name.
    socketio_channel: str = "skindoc-socketio"
    websocket_compression: bool = False
    # Browser origins allowed to open Socket.IO connections; empty means same origin only.
    cors_origins: tuple[str, ...] = ()
    # Group commit: messages arriving within this window share one transaction.
    message_batch_max: int = 64
    # How often each node checks its live sockets against revoked sessions (a lost revocation signal's limit).
    revoked_session_sweep_s: int = 30

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ChatConfig:
        origins = tuple(o.strip() for o in (env.get("SKINDOC_SOCKETIO_CORS_ORIGINS") or "").split(",") if o.strip())
        return cls(
            doctor_capacity=env_int(env, "SKINDOC_DOCTOR_CAPACITY", cls.doctor_capacity),
            patient_max_open=env_int(env, "SKINDOC_PATIENT_MAX_OPEN", cls.patient_max_open, minimum=1),
            queue_ageing_minutes=env_int(env, "SKINDOC_QUEUE_AGEING_MINUTES", cls.queue_ageing_minutes, minimum=1),
            default_consultation_minutes=env_int(
                env, "SKINDOC_DEFAULT_CONSULTATION_MINUTES", cls.default_consultation_minutes, minimum=1
            ),
            presence_grace_s=env_int(env, "SKINDOC_PRESENCE_GRACE_SECONDS", cls.presence_grace_s, minimum=1),
            max_message_chars=env_int(env, "SKINDOC_CHAT_MAX_MESSAGE_CHARS", cls.max_message_chars, minimum=1),
            socketio_channel=env.get("SKINDOC_SOCKETIO_CHANNEL") or cls.socketio_channel,
            websocket_compression=env_bool(env, "SKINDOC_WEBSOCKET_COMPRESSION", cls.websocket_compression),
            cors_origins=origins,
            message_batch_max=env_int(env, "SKINDOC_CHAT_MESSAGE_BATCH_MAX", cls.message_batch_max, minimum=1),
            revoked_session_sweep_s=env_int(
                env, "SKINDOC_REVOKED_SESSION_SWEEP_S", cls.revoked_session_sweep_s, minimum=1
            ),
        )

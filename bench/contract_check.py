"""How long the server's schema check (chat/contract.py) takes per client event; prints microseconds.

.venv/bin/python bench/contract_check.py
"""

from __future__ import annotations

import timeit

from chat import contract

CASE = "5f0e7d7c-1111-4222-8333-444455556666"
SAMPLES = {
    "message:send": {"consultation_id": CASE, "client_msg_id": "c-1", "body": "Hello, how are you doing today?"},
    "consultation:join": {"consultation_id": CASE, "after_seq": 12},
    "appointment:propose": {
        "consultation_id": CASE,
        "slots": [{"starts_at": "2027-01-01T10:00:00Z", "kind": "video", "location": "https://meet.example/x"}] * 5,
    },
    "message:send (refused)": {"consultation_id": "nope", "client_msg_id": "c-1", "body": "x"},
}


def check(event: str, payload: dict) -> None:
    try:
        contract.check_event(event, payload, 2000)
    except Exception:
        pass  # a refused sample is timed like an accepted one


def main(number: int = 20_000) -> None:
    for name, payload in SAMPLES.items():
        event = name.split(" ")[0]
        check(event, payload)
        runs = number if "refused" not in name else number // 20
        seconds = timeit.timeit(lambda event=event, payload=payload: check(event, payload), number=runs)
        print(f"{name:28s} {seconds / runs * 1e6:8.1f} us per event")


if __name__ == "__main__":
    main()

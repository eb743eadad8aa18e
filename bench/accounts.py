"""Accounts and consultations for the benchmarks, made through a cluster's REST API as a client would.

Passwords are random (nothing to keep); doctors are approved by an admin that `skindoc admin create`
made, over the admin API.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass

import aiohttp

from bench.cluster import Cluster
from tests.test_triage_support import SYMPTOMS


@dataclass
class Account:
    user_id: str
    email: str
    role: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class AccountMaker:
    """Registers and signs in accounts through a node's REST API; doctors are approved by an admin over the API."""

    def __init__(self, cluster: Cluster, session: aiohttp.ClientSession, run_tag: str) -> None:
        self._cluster = cluster
        self._session = session
        self._tag = run_tag
        self._password = secrets.token_urlsafe(18)
        self._admin: Account | None = None
        self._admin_lock = asyncio.Lock()

    def _url(self, i: int, path: str) -> str:
        nodes = self._cluster.nodes
        return f"{nodes[i % len(nodes)].url}{path}"

    async def _post(self, url: str, body: dict, headers: dict | None = None) -> dict:
        async with self._session.post(url, json=body, headers=headers) as response:
            data = await response.json(content_type=None)
            if response.status >= 300:
                raise RuntimeError(f"POST {url} answered {response.status}: {data}")
            return data

    async def make(self, role: str, i: int) -> Account:
        email = f"{role}{i}.{self._tag}@bench.example.org"
        await self._post(
            self._url(i, "/api/v1/auth/register"),
            {"email": email, "password": self._password, "name": f"{role} {i}", "role": role},
        )
        tokens = await self._post(self._url(i, "/api/v1/auth/login"), {"email": email, "password": self._password})
        account = Account(tokens["user"]["id"], email, role, tokens["access_token"])
        if role == "doctor":
            await self._post(
                self._url(i, f"/api/v1/admin/doctors/{account.user_id}/approve"), {}, await self._admin_headers()
            )
        return account

    async def make_many(self, role: str, count: int, start: int = 0, concurrency: int = 16) -> list[Account]:
        limit = asyncio.Semaphore(concurrency)

        async def one(i: int) -> Account:
            async with limit:
                return await self.make(role, i)

        return list(await asyncio.gather(*(one(i) for i in range(start, start + count))))

    async def _admin_headers(self) -> dict[str, str]:
        async with self._admin_lock:
            if self._admin is None:
                self._admin = await self._create_admin()
        return self._admin.headers

    async def _create_admin(self) -> Account:
        email = f"admin.{self._tag}@bench.example.org"
        await asyncio.to_thread(
            self._cluster.cli,
            ["admin", "create", "--email", email, "--name", "Bench admin", "--password-stdin"],
            self._password + "\n",
        )
        tokens = await self._post(self._url(0, "/api/v1/auth/login"), {"email": email, "password": self._password})
        return Account(tokens["user"]["id"], email, "admin", tokens["access_token"])

    async def open_case(self, patient: Account, i: int) -> str:
        body = {"description": f"bench case {i}", "body_site": "arm", "symptoms": SYMPTOMS}
        return (await self._post(self._url(i, "/api/v1/consultations"), body, patient.headers))["id"]

    async def take_case(self, doctor: Account, case_id: str, i: int) -> None:
        await self._post(self._url(i, f"/api/v1/consultations/{case_id}/take"), {}, doctor.headers)

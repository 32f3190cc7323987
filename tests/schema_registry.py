"""A schema-registry test double: the subset of the Confluent Schema Registry REST API that confluent-kafka's
serializers and Driftwarden's decoders call, served by aiohttp on 127.0.0.1 in a thread of the test process.

No registry server can run here (Confluent's is a JVM service, Apicurio and Karapace need servers or packages
we do not have), and confluent-kafka's ``mock://`` registry lives inside one client object, so a worker in
another process cannot see it. This double stands in for the REGISTRY only (the broker stays real): it
registers schemas under subjects (the same schema text and type get the same id everywhere, as the real
registry does), serves them by id and by subject version, and optionally requires HTTP basic auth. It stores
schemas as posted (confluent-kafka's Protobuf serializer posts the serialized ``FileDescriptorProto``, which is
also what the real registry returns with ``format=serialized``).

Endpoints: ``POST /subjects/{s}/versions``, ``POST /subjects/{s}`` (lookup), ``GET /subjects``,
``GET /subjects/{s}/versions``, ``GET /subjects/{s}/versions/{v|latest}``, ``GET /schemas/ids/{id}``.
"""

from __future__ import annotations

import asyncio
import base64
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aiohttp import web

from tests.helpers import free_port

JSON = "application/vnd.schemaregistry.v1+json"


class RegistryDouble:
    """Registered schemas: ids by (text, type, references), versions by subject."""

    def __init__(self, username: str = "", password: str = "") -> None:
        self.schemas: list[dict[str, Any]] = []  # id - 1 -> {"schema", "schemaType", "references"}
        self.subjects: dict[str, list[int]] = {}  # subject -> schema id of each version
        self.requests: list[str] = []  # "GET /schemas/ids/1", in order
        self._auth = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode() if username else ""

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._log_and_authenticate])
        app.router.add_post("/subjects/{subject}/versions", self._register)
        app.router.add_post("/subjects/{subject}", self._lookup)
        app.router.add_get("/subjects", self._subjects)
        app.router.add_get("/subjects/{subject}/versions", self._versions)
        app.router.add_get("/subjects/{subject}/versions/{version}", self._version)
        app.router.add_get("/schemas/ids/{id}", self._by_id)
        return app

    @web.middleware
    async def _log_and_authenticate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append(f"{request.method} {request.path}")
        if self._auth and request.headers.get("Authorization") != self._auth:
            return self._error(401, 401, "Unauthorized")
        response: web.StreamResponse = await handler(request)
        return response

    @staticmethod
    def _json(body: Any, status: int = 200) -> web.Response:
        return web.json_response(body, status=status, content_type=JSON)

    def _error(self, status: int, code: int, message: str) -> web.Response:
        return self._json({"error_code": code, "message": message}, status)

    @staticmethod
    def _key(body: dict[str, Any]) -> dict[str, Any]:
        return {"schema": body["schema"], "schemaType": body.get("schemaType", "AVRO"),
                "references": body.get("references") or []}

    async def _register(self, request: web.Request) -> web.Response:
        body = self._key(await request.json())
        if body in self.schemas:
            schema_id = self.schemas.index(body) + 1
        else:
            self.schemas.append(body)
            schema_id = len(self.schemas)
        versions = self.subjects.setdefault(request.match_info["subject"], [])
        if schema_id not in versions:
            versions.append(schema_id)
        return self._json({"id": schema_id})

    def _registered(self, subject: str, version: int) -> dict[str, Any]:
        schema_id = self.subjects[subject][version - 1]
        return {"subject": subject, "version": version, "id": schema_id, **self.schemas[schema_id - 1]}

    async def _lookup(self, request: web.Request) -> web.Response:
        subject = request.match_info["subject"]
        body = self._key(await request.json())
        for version, schema_id in enumerate(self.subjects.get(subject, []), 1):
            if self.schemas[schema_id - 1] == body:
                return self._json(self._registered(subject, version))
        return self._error(404, 40403, "Schema not found")

    async def _subjects(self, _: web.Request) -> web.Response:
        return self._json(sorted(self.subjects))

    async def _versions(self, request: web.Request) -> web.Response:
        subject = request.match_info["subject"]
        if subject not in self.subjects:
            return self._error(404, 40401, f"Subject '{subject}' not found.")
        return self._json(list(range(1, len(self.subjects[subject]) + 1)))

    async def _version(self, request: web.Request) -> web.Response:
        subject, version = request.match_info["subject"], request.match_info["version"]
        versions = self.subjects.get(subject)
        if not versions:
            return self._error(404, 40401, f"Subject '{subject}' not found.")
        number = len(versions) if version == "latest" else int(version)
        if not 1 <= number <= len(versions):
            return self._error(404, 40402, f"Version {version} not found.")
        return self._json(self._registered(subject, number))

    async def _by_id(self, request: web.Request) -> web.Response:
        schema_id = int(request.match_info["id"])
        if not 1 <= schema_id <= len(self.schemas):
            return self._error(404, 40403, "Schema not found")
        return self._json(self.schemas[schema_id - 1])


@contextmanager
def running_registry(username: str = "", password: str = "") -> Iterator[tuple[str, RegistryDouble]]:
    """The double on a free port of 127.0.0.1, served from a thread; yields its URL and state."""
    registry = RegistryDouble(username, password)
    port = free_port()
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(registry.app(), access_log=None)
    started = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
        started.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=serve, name="schema-registry-double", daemon=True)
    thread.start()
    if not started.wait(10):
        raise RuntimeError("the schema-registry double did not start within 10 s")
    try:
        yield f"http://127.0.0.1:{port}", registry
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)

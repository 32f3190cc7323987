"""Avro and JSON Schema payloads in the schema-registry wire format (magic byte 0, 4-byte schema id, body),
read with the writer schema fetched once per schema id.

confluent-kafka's ``AvroDeserializer`` and ``JSONDeserializer`` resolve a subject, expand the schema and run
data-contract rules (Avro), or validate with jsonschema (JSON Schema), on every record: about 130 and 230 µs
per record here. Driftwarden reads with the writer schema only and validates with its own contracts, so it
keeps the schemas and calls the readers directly: fastavro's ``schemaless_reader`` for Avro (what the
deserializer calls inside), orjson for JSON Schema bodies after checking that the schema id is a registered
JSON schema.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

import fastavro
import orjson

from stream.pipeline.barrier import StageFailure, describe

if TYPE_CHECKING:
    from confluent_kafka.schema_registry import Schema, SchemaRegistryClient


def fetch_failure(exc: Exception, schema_id: int) -> Exception:
    """What a failed registry request means: an id the registry does not know (HTTP 404) is the record's fault
    (a ValueError: the record is dead-lettered); anything else (unreachable, refused credentials, a server
    error) is not, so the stage stops (`StageFailure`: the worker exits and restarts from its checkpoint)
    rather than dead-lettering every record while the registry is away."""
    if getattr(exc, "http_status_code", None) == 404:
        return ValueError(f"schema id {schema_id} could not be fetched from the registry: {exc}")
    return StageFailure(f"the schema registry did not answer for schema id {schema_id} ({describe(exc)}): check "
                        "DRIFTWARDEN_SCHEMA_REGISTRY_URL and its credentials; the records stay in Kafka")


class _WriterSchemas:
    """Registered schemas by id, fetched once (a failed fetch is retried on the next record)."""

    schema_type = ""

    def __init__(self, client: SchemaRegistryClient) -> None:
        self._client = client
        self._parsed: dict[int, Any] = {}

    def parsed(self, value: bytes) -> Any:
        if len(value) < 5 or value[0] != 0:
            raise ValueError("not in the schema-registry wire format (no magic byte 0)")
        schema_id = int.from_bytes(value[1:5], "big")
        found = self._parsed.get(schema_id)
        if found is None:
            try:
                schema = self._client.get_schema(schema_id)
                kind = schema.schema_type or "AVRO"
                if kind != self.schema_type:
                    raise ValueError(f"schema id {schema_id} is {kind}, not {self.schema_type}")
                found = self._parsed[schema_id] = self.parse(schema)  # may fetch referenced schemas
            except ValueError:
                raise
            except Exception as exc:  # SchemaRegistryError (unknown id, HTTP errors), httpx2 transport errors
                raise fetch_failure(exc, schema_id) from None
        return found

    def parse(self, schema: Schema) -> Any:
        return True


class AvroReader(_WriterSchemas):
    """Avro records as dicts (logical types as fastavro gives them: timestamp-millis is a UTC datetime)."""

    schema_type = "AVRO"

    def __call__(self, value: bytes) -> Any:
        schema = self.parsed(value)
        try:
            return fastavro.schemaless_reader(io.BytesIO(value[5:]), schema, None)
        except Exception as exc:  # EOFError, UnicodeDecodeError, IndexError... on a damaged body
            raise ValueError(f"avro payload could not be decoded ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else 'damaged body'})") from None

    def parse(self, schema: Schema) -> Any:
        named: dict[str, Any] = {}
        try:
            self._named(schema, named)
            return fastavro.parse_schema(orjson.loads(schema.schema_str or ""), named_schemas=named)
        except (orjson.JSONDecodeError, fastavro.schema.SchemaParseException, ValueError) as exc:
            raise ValueError(f"registered Avro schema does not parse: {exc}") from None

    def _named(self, schema: Schema, named: dict[str, Any]) -> None:
        """Add the schemas ``schema`` references (recursively) to ``named``, as the deserializer does."""
        for ref in schema.references or []:
            if ref.subject is None or ref.version is None:
                continue
            referenced = self._client.get_version(ref.subject, ref.version).schema
            self._named(referenced, named)
            fastavro.parse_schema(orjson.loads(referenced.schema_str or ""), named_schemas=named)


class JsonSchemaReader(_WriterSchemas):
    """JSON bodies of records whose schema id is a registered JSON schema."""

    schema_type = "JSON"

    def __call__(self, value: bytes) -> Any:
        self.parsed(value)
        try:
            return orjson.loads(value[5:])
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"json_schema payload could not be decoded (not JSON: {exc})") from None

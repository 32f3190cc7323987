"""Settings: one pydantic-settings class, every variable prefixed ``DRIFTWARDEN_``."""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from stream.contracts.events import Limits
from stream.contracts.redact import safe_url

if TYPE_CHECKING:
    from stream.pipeline.ingest import IngestBounds


class Settings(BaseSettings):
    """Effective configuration of a Driftwarden worker; every default works on one machine."""

    model_config = SettingsConfigDict(env_prefix="DRIFTWARDEN_", extra="ignore")

    kafka_bootstrap_servers: str | None = Field(
        None, description="host:port[,host:port]; unset starts the embedded tansu broker"
    )
    kafka_flavor: Literal["auto", "kafka", "tansu"] = Field(
        "auto", description="tansu switches on the embedded broker's workarounds; auto = tansu when embedded"
    )
    broker_host: str = Field("127.0.0.1", description="embedded broker bind address")
    broker_port: int = Field(0, ge=0, le=65535, description="embedded broker port; 0 picks a free port")
    topic_partitions: int = Field(4, ge=1, description="partitions of topics that Driftwarden creates")
    topic_predictions: str = "predictions"
    topic_ground_truth: str = "ground_truth"
    topic_alerts: str = "alerts"
    topic_dead_letters: str = "dead_letters"
    topic_models: str = "models"
    topic_outcomes: str = Field("driftwarden-outcomes", description="internal: outcomes re-keyed by model")
    app_id: str = Field("driftwarden",
                        description="Faust application id and consumer group; the ingest group is <app_id>-ingest")

    data_dir: Path = Field(Path(".driftwarden"), description="local state: chdb data, Faust tables, lock")
    clickhouse_dsn: str | None = Field(
        None, description="chdb:///abs/path (embedded) or http://user:pass@host:8123/db; unset = chdb in data_dir"
    )
    clickhouse_database: str = "driftwarden"
    outcomes_ttl_days: int = Field(90, ge=1, description="TTL of joined outcome rows in ClickHouse")

    window_seconds: int = Field(300, ge=1, description="default tumbling window size")
    max_label_delay_seconds: int = Field(7 * 24 * 3600, ge=1, description="how long either side waits")
    allowed_lateness_seconds: int = Field(60, ge=0, description="watermark = max event time - lateness")
    idle_close_seconds: float = Field(5.0, gt=0, description="flush windows on a timer when the stream idles")
    duplicate_label_policy: Literal["first", "latest"] = "first"
    unregistered_model: Literal["reject", "auto_register"] = Field(
        "auto_register", description="what to do with events of a model nobody registered"
    )

    webhook_url: str | None = Field(None, description="POST every alert at or above the severity here")
    webhook_secret: str = Field(
        "", description="Standard Webhooks signing secret: whsec_<base64> or any text; empty = unsigned")
    webhook_min_severity: Literal["info", "warning", "critical"] = "warning"

    max_message_bytes: int = Field(65536, ge=1, description="larger messages are dead-lettered (too_large)")
    max_string_length: int = Field(1024, ge=1, description="longest string value, in characters")
    max_features: int = Field(500, ge=1, description="most features per prediction")
    dead_letter_raw_bytes: int = Field(4096, ge=1, description="raw bytes kept per dead letter")

    web_host: str = Field("127.0.0.1", description="HTTP endpoint bind address")
    web_port: int = Field(6066, ge=0, le=65535, description="HTTP endpoint port (/healthz /readyz /metrics /sql)")
    log_level: Literal["debug", "info", "warning", "error"] = "warning"

    sink_flush_seconds: float = Field(1.0, gt=0, description="at most about one insert per table this often")
    checkpoint_seconds: float = Field(5.0, gt=0, description="how often stage state is checkpointed")
    sink_queue_batches: int = Field(64, ge=1, description="bounded writer queue (back-pressure beyond it)")

    # --- bounds on event time and cardinality, fatal exit (issue 13)
    max_future_skew_seconds: int = Field(
        300, ge=0, description="predictions/labels dated further after their Kafka record time are dead-lettered")
    max_event_age_days: int = Field(
        3650, ge=0, description="events dated further before their Kafka record time are dead-lettered; 0: no limit")
    max_models: int = Field(1000, ge=1, description="most models; auto-registering another is dead-lettered")
    max_features_per_model: int = Field(500, ge=1, description="most features of an auto-registered model")
    max_versions_per_model: int = Field(50, ge=1, description="later versions of a model count as '__other__'")
    max_segment_values: int = Field(100, ge=1, description="per model and segment field; later values: '__other__'")
    fatal_exit_seconds: float = Field(
        10.0, gt=0, description="after a stage failure the process exits (code 70) at the latest this much later")

    @property
    def ingest_bounds(self) -> IngestBounds:
        from stream.pipeline.ingest import IngestBounds

        return IngestBounds(max_future_skew_ms=self.max_future_skew_seconds * 1000,
                            max_event_age_ms=self.max_event_age_days * 86_400_000, max_models=self.max_models,
                            max_features_per_model=self.max_features_per_model)

    # --- security: HTTP endpoint and read-only SQL (issue 11)
    web_token: SecretStr | None = Field(
        None, description="bearer token required by /sql and every data endpoint; /healthz /readyz /metrics stay open")
    web_allow_open: bool = Field(False, description="allow a non-loopback DRIFTWARDEN_WEB_HOST without a token")
    web_read_timeout_seconds: float = Field(10.0, gt=0, description="a request must arrive whole within this")
    web_max_connections: int = Field(256, ge=1, description="open HTTP connections at most (more are refused)")
    web_max_body_bytes: int = Field(1 << 20, ge=1024, description="largest request body")
    sql_max_execution_seconds: float = Field(10.0, gt=0, description="time limit of one /sql query")
    sql_max_memory_bytes: int = Field(512 * 1024 * 1024, ge=1 << 20, description="memory limit of one /sql query")
    sql_max_rows_to_read: int = Field(1_000_000_000, ge=1, description="rows one /sql query may read")
    sql_max_bytes_to_read: int = Field(50 * 1024**3, ge=1, description="bytes one /sql query may read")
    sql_max_result_rows: int = Field(100_000, ge=1, description="rows one /sql query returns at most (streamed)")
    sql_max_threads: int = Field(2, ge=1, description="engine threads of one /sql query (ingest keeps the rest)")
    sql_queue: int = Field(8, ge=0, description="/sql queries waiting behind the running one; more get 503")
    ready_stall_seconds: float = Field(
        60.0, gt=0, description="/readyz fails when input waits and nothing was processed for this long")

    @model_validator(mode="after")
    def _no_unknown_variables(self) -> Settings:
        errors = unknown_environment(os.environ, type(self).model_fields)
        if errors:
            raise ValueError("; ".join(errors))
        return self

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def embedded_kafka(self) -> bool:
        return not self.kafka_bootstrap_servers

    @property
    def limits(self) -> Limits:
        """The size limits of incoming messages (`stream.contracts.events.Limits`)."""
        return Limits(max_message_bytes=self.max_message_bytes, max_string_length=self.max_string_length,
                      max_features=self.max_features, dead_letter_raw_bytes=self.dead_letter_raw_bytes)

    @property
    def tansu(self) -> bool:
        """Whether the broker is tansu (the workarounds in `stream.kafka.tansu_compat` apply)."""
        return self.kafka_flavor == "tansu" or (self.kafka_flavor == "auto" and self.embedded_kafka)

    @property
    def dsn(self) -> str:
        return self.clickhouse_dsn or f"chdb://{self.data_dir / 'clickhouse'}"

    @property
    def embedded_clickhouse(self) -> bool:
        return self.dsn.startswith("chdb:")

    def masked(self) -> dict[str, Any]:
        """The configuration as a dict with passwords in DSNs replaced by ``***``."""
        out = self.model_dump(mode="json")
        out["clickhouse_dsn"] = mask_dsn(self.dsn)
        out["webhook_secret"] = "***" if self.webhook_secret else ""
        out["webhook_url"] = safe_url(self.webhook_url) if self.webhook_url else None
        out["kafka_bootstrap_servers"] = self.kafka_bootstrap_servers or "(embedded tansu broker)"
        out["schema_registry_url"] = mask_dsn(self.schema_registry_url) if self.schema_registry_url else None
        for secret in ("kafka_sasl_password", "kafka_ssl_key_password", "schema_registry_password",
                       "kafka_oauth_token", "kafka_oauth_client_secret"):
            out[secret] = "***" if getattr(self, secret).get_secret_value() else ""
        if self.kafka_oauth_token_endpoint:
            out["kafka_oauth_token_endpoint"] = safe_url(self.kafka_oauth_token_endpoint)
        out["web_token"] = "***" if self.web_token else None
        out["alertmanager_url"] = (",".join(safe_url(u) for u in self.alertmanager_urls)
                                   if self.alertmanager_url else None)
        return out

    # --- alert routing, no-data and label maturity (issue 15)
    alertmanager_url: str | None = Field(
        None, description="Alertmanager base URL(s), comma-separated, e.g. http://alertmanager:9093; alerts are "
        "posted to each one's /api/v2/alerts")
    alertmanager_resend_seconds: float = Field(
        60.0, gt=0, description="re-post firing alerts this often (keep under Alertmanager's resolve_timeout)")
    public_url: str | None = Field(
        None, description="base URL of this server in links (the model page in alerts); unset = the web address")

    @property
    def alertmanager_urls(self) -> list[str]:
        """The Alertmanager base URLs (``alertmanager_url`` split at commas)."""
        return [u.strip() for u in (self.alertmanager_url or "").split(",") if u.strip()]

    @property
    def public_base_url(self) -> str:
        """Base URL for links to this server: ``public_url``, else ``http://<web_host>:<web_port>``."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.web_host in ("0.0.0.0", "") else self.web_host
        return f"http://{host}:{self.web_port}"

    # --- Kafka security, ClickHouse TLS, schema-registry payloads (issue 14)
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="how every client reaches an external Kafka (the embedded broker is PLAINTEXT)")
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] = Field(
        "PLAIN", description="SASL mechanism with SASL_PLAINTEXT / SASL_SSL (OAUTHBEARER: the KAFKA_OAUTH_* settings)")
    kafka_sasl_username: str = Field("", description="SASL user (an API key on Confluent Cloud)")
    kafka_sasl_password: SecretStr = Field(SecretStr(""), description="SASL password (an API secret); masked")
    kafka_ssl_cafile: Path | None = Field(None, description="CA bundle (PEM) to verify the brokers; unset = system CAs")
    kafka_ssl_certfile: Path | None = Field(None, description="client certificate (PEM) for mutual TLS")
    kafka_ssl_keyfile: Path | None = Field(None, description="private key (PEM) of the client certificate")
    kafka_ssl_key_password: SecretStr = Field(SecretStr(""), description="password of the client key; masked")
    kafka_ssl_check_hostname: bool = Field(True, description="verify that the broker certificate names the host")
    clickhouse_ca_file: Path | None = Field(None, description="CA (PEM) to verify an https:// ClickHouse server")
    clickhouse_client_cert: Path | None = Field(None, description="client certificate (PEM) for ClickHouse mTLS")
    clickhouse_client_key: Path | None = Field(None, description="private key (PEM) of the ClickHouse client cert")
    clickhouse_verify: bool = Field(True, description="verify the ClickHouse server certificate (https://)")
    schema_registry_url: str | None = Field(
        None, description="Confluent-compatible schema registry for avro / protobuf / json_schema payloads")
    schema_registry_username: str = Field("", description="schema registry basic-auth user (an API key)")
    schema_registry_password: SecretStr = Field(SecretStr(""), description="schema registry basic-auth password")
    payload_format_predictions: Literal["json", "avro", "protobuf", "json_schema"] = Field(
        "json", description="value format on the predictions topic (avro / protobuf / json_schema: schema-registry "
        "framing)")
    payload_format_ground_truth: Literal["json", "avro", "protobuf", "json_schema"] = Field(
        "json", description="value format on the ground_truth topic")
    field_map_predictions: dict[str, str] = Field(
        default_factory=dict, description='JSON {"our field": "their.field.path"}, e.g. {"prediction_id": '
        '"request_id", "features": "inputs.features"}')
    field_map_ground_truth: dict[str, str] = Field(default_factory=dict, description="same for ground truth")
    kafka_oauth_token: SecretStr = Field(SecretStr(""), description="OAUTHBEARER: a static access token; masked")
    kafka_oauth_token_file: Path | None = Field(
        None, description="OAUTHBEARER: a file holding the token, re-read when it changes (a sidecar refreshes it)")
    kafka_oauth_token_endpoint: str | None = Field(
        None, description="OAUTHBEARER: OIDC token endpoint for the client-credentials grant")
    kafka_oauth_client_id: str = Field("", description="OAUTHBEARER client-credentials client id")
    kafka_oauth_client_secret: SecretStr = Field(SecretStr(""), description="OAUTHBEARER client secret; masked")
    kafka_oauth_scope: str = Field("", description="OAUTHBEARER client-credentials scope (space-separated)")

    @property
    def clickhouse_tls(self) -> dict[str, Any]:
        """clickhouse-connect TLS arguments (``ca_cert``, ``client_cert``, ``client_cert_key``, ``verify``)."""
        options: dict[str, Any] = {"verify": self.clickhouse_verify}
        for key, path in (("ca_cert", self.clickhouse_ca_file), ("client_cert", self.clickhouse_client_cert),
                          ("client_cert_key", self.clickhouse_client_key)):
            if path is not None:
                options[key] = str(path)
        return options


def mask_dsn(dsn: str) -> str:
    """Hide the password of a URL-style DSN, whatever characters it holds (``/ # ? @`` included).

    >>> mask_dsn("http://bob:secret@db:8123/x")
    'http://bob:***@db:8123/x'
    >>> mask_dsn("http://bob:se/cr#et?@db:8123/x")
    'http://bob:***@db:8123/x'
    >>> mask_dsn("chdb:///tmp/ch")
    'chdb:///tmp/ch'
    """
    scheme, sep, rest = dsn.partition("://")
    at = rest.rfind("@")
    if not sep or at < 0:
        return dsn
    user, colon, _ = rest[:at].partition(":")
    return f"{scheme}://{user}{':***' if colon else ''}@{rest[at + 1:]}"


def unknown_environment(environ: Mapping[str, str], fields: Iterable[str]) -> list[str]:
    """One error per ``DRIFTWARDEN_*`` variable that names no setting, with the nearest known name."""
    known = {f"DRIFTWARDEN_{name.upper()}" for name in fields}
    errors = []
    for name in sorted(environ):
        if name.startswith("DRIFTWARDEN_") and name not in known:
            near = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
            errors.append(f"{name} is not a setting" + (f": did you mean {near[0]}?" if near else
                                                        " (driftwarden config lists the settings)"))
    return errors

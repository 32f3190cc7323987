"""`driftwarden models register|list|show`: model specs and reference profiles on the compacted models topic.

``list`` and ``show`` read the topic of the running service (or of the configured Kafka); with neither they
read the registry the service keeps in ClickHouse's ``models`` table.

The models topic is read from the beginning up to the high watermark that Fetch responses carry (not
ListOffsets(latest), which tansu gets wrong; see `stream.kafka.tansu_compat`), without a consumer group. Records
are applied in order, so the latest registration of a model id wins even where compaction never runs.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from rich.text import Text

from stream.config import Settings
from stream.contracts.events import ModelSpec
from stream.contracts.registry import RegisteredModel, Registry
from stream.errors import UserError
from stream.kafka.topics import publish_model, read_models
from stream.monitor.profiles import FeatureProfile, profile_file

__all__ = ["load_spec", "models_app", "profile_summary", "reference_profile"]

models_app = typer.Typer(help="Register monitored models and inspect the registry.", no_args_is_help=True,
                         rich_markup_mode="markdown")



def _say(console: Console, text: str) -> None:
    """Print plain text (no markup, highlighting or hard wrapping: it may hold user data and paths)."""
    console.print(text, highlight=False, markup=False, soft_wrap=True)


def load_spec(path: Path) -> ModelSpec:
    """Read a model spec from a YAML or JSON file; every problem is a one-line :class:`UserError`."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a UTF-8 text file") from None
    try:
        data = json.loads(text) if Path(path).suffix.lower() == ".json" else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserError(f"{path}: invalid YAML{where}: {problem}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: a model spec must be a mapping of fields, not {type(data).__name__}")
    try:
        return ModelSpec.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise UserError(f"{path}: " + (f"field '{where}': " if where else "") + message + more) from None


def reference_profile(spec: ModelSpec, path: Path, bins: int = 10) -> dict[str, FeatureProfile]:
    """Profile the spec's numeric and categorical features from a reference CSV or Parquet file."""
    numeric = [f.name for f in spec.features if f.type == "numeric"]
    categorical = [f.name for f in spec.features if f.type == "categorical"]
    if not numeric and not categorical:
        raise UserError(f"the spec of {spec.model_id!r} lists no features to profile from {path}")
    columns = _columns(Path(path))
    missing = [name for name in (*numeric, *categorical) if name not in columns]
    if missing:
        raise UserError(f"{path} has no column {', '.join(map(repr, missing))} (features of the spec)")
    try:
        return profile_file(Path(path), numeric, categorical, bins)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot profile {path}: {str(exc).splitlines()[0]}") from None


def _columns(path: Path) -> list[str]:
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            return list(pq.read_schema(path).names)
        import pandas as pd

        return [str(c) for c in pd.read_csv(path, nrows=0).columns]
    except FileNotFoundError:
        raise UserError(f"cannot read {path}: no such file") from None
    except Exception as exc:
        raise UserError(f"cannot read {path}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None


def profile_summary(model: RegisteredModel) -> dict[str, Any]:
    """Spec and a short profile summary (no bin counts) of a registered model, JSON-ready."""
    profile: dict[str, Any] | None = None
    if model.profile is not None:
        profile = {}
        for name, d in model.profile.items():
            p = FeatureProfile.from_dict(d)
            item: dict[str, Any] = {"kind": p.kind, "n": p.n, "missing": p.missing}
            if p.kind == "numeric":
                item.update(bins=len(p.counts), min=p.min, max=p.max, mean=p.mean, std=p.std)
            else:
                top = sorted(zip(p.counts, p.categories, strict=True), reverse=True)[:5]
                item.update(categories=len(p.categories), top={c: n for n, c in top})
            profile[name] = item
    return {"spec": model.spec.model_dump(mode="json"), "source": model.source, "profile": profile}








def _out() -> Console:
    from stream.cli.output import stdout

    return stdout()  # piped: no colour, never wraps cells


def _settings() -> Settings:
    from stream.cli.common import settings

    return settings()


def _load_registry(s: Settings) -> Registry:
    """The registry from the models topic, or from ClickHouse when no service runs and no Kafka is configured."""
    from stream.cli.common import kafka_target
    from stream.cli.output import stderr
    from stream.client import resolve_bootstrap

    try:
        resolve_bootstrap(s)
    except UserError:
        return _registry_from_clickhouse(s)
    bootstrap, security = kafka_target(s)
    registry, bad = asyncio.run(read_models(bootstrap, s.topic_models, security=security))
    if bad:
        _say(stderr(), f"warning: skipped {bad} unreadable records on topic {s.topic_models!r}")
    return registry


def _registry_from_clickhouse(s: Settings) -> Registry:
    """The registry as the service last wrote it to the ``models`` table (the latest registration wins)."""
    from stream.cli.common import run_query
    from stream.config import mask_dsn

    try:
        _, rows = run_query("SELECT spec, profile FROM models FINAL ORDER BY registered_at")
    except UserError as exc:
        raise UserError(f"no service running on {s.data_dir} and no registry in ClickHouse at {mask_dsn(s.dsn)} "
                        f"({exc}): start the service with `driftwarden up`") from None
    registry = Registry()
    for spec, profile in rows:
        registry.put(RegisteredModel(spec=ModelSpec.model_validate_json(spec),
                                     profile=json.loads(profile) if profile else None, source="unknown"))
    return registry


@models_app.command("register")
def register(
    spec_file: Annotated[Path, typer.Argument(metavar="SPEC", help="model spec, YAML or JSON")],
    reference: Annotated[Path | None, typer.Option("--reference", help="reference data, CSV or Parquet")] = None,
    bins: Annotated[int, typer.Option("--bins", min=2, help="quantile bins per numeric feature")] = 10,
) -> None:
    """Register (or re-register) a model: publish its spec, and a reference profile, to the models topic.

    Example: `driftwarden models register examples/spec.yaml --reference examples/reference.csv`
    """
    from stream.runtime.service import ensure_topics

    spec = load_spec(spec_file)
    profile = reference_profile(spec, reference, bins) if reference is not None else None
    stored = None if profile is None else {name: p.to_dict() for name, p in profile.items()}
    model = RegisteredModel(spec=spec, profile=stored)
    from stream.cli.common import kafka_target

    s = _settings()
    bootstrap, security = kafka_target(s)
    asyncio.run(ensure_topics(bootstrap, s, security=security))
    asyncio.run(publish_model(bootstrap, s.topic_models, model, security=security))
    what = f"model {spec.model_id} version {spec.version} ({spec.task}, {len(spec.features)} features)"
    if profile:
        rows = max(p.n for p in profile.values())
        what += f" with a reference profile of {len(profile)} features from {rows} rows of {reference}"
    _say(_out(), f"registered {what} on topic {s.topic_models} at {bootstrap}")


@models_app.command("list")
def list_models() -> None:
    """List registered models (from the models topic; from ClickHouse when no service runs).

    Example: `driftwarden models list`
    """
    registry = _load_registry(_settings())
    table = Table("model_id", "version", "task", "features", "segments", "profile", "source")
    for model in registry.all():
        spec = model.spec
        profile = f"{len(model.profile)} features" if model.profile else "-"
        cells = (spec.model_id, spec.version, spec.task, str(len(spec.features)),
                 ",".join(spec.segment_fields) or "-", profile, model.source)
        table.add_row(*(Text(cell) for cell in cells))
    console = _out()
    console.print(table)
    _say(console, f"{len(registry)} models")


@models_app.command("show")
def show(
    model_id: Annotated[str, typer.Argument(metavar="MODEL", help="the model's model_id", show_default=False)],
    full: Annotated[bool, typer.Option("--full", help="print the whole reference profile (bin counts)")] = False,
) -> None:
    """Print a model's spec and reference-profile summary as JSON.

    Example: `driftwarden models show my-model --full`
    """
    registry = _load_registry(_settings())
    model = registry.get(model_id)
    if model is None:
        known = ", ".join(m.spec.model_id for m in registry.all()[:10]) or "none"
        raise UserError(f"no model {model_id!r} is registered (registered: {known})")
    data = model.model_dump(mode="json") if full else profile_summary(model)
    typer.echo(json.dumps(data, indent=2))

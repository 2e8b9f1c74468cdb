"""The worker's section of the settings (`SAFEGUARD_STREAMS__*`), owned here and composed by `safeguard.settings`.

Imports nothing of the project, so the composition root can import it without importing Faust.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class StreamsSettings(BaseModel):
    """The Faust worker."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    app_id: str = "safeguard-streams"
    store_url: str = Field(
        default="rocksdb://",
        description="table store: rocksdb:// keeps state on disk under data_dir, so a restart reads only the changelog "
        "tail; memory:// rebuilds it from the whole changelog on every start (tests)",
    )
    data_dir: Path = Field(
        default=Path(".safeguard/streams"),
        description="local table state; each worker uses <data_dir>/<app_id>[/<group_instance_id>], one process each",
    )
    rocksdb_cache_mb: int = Field(
        default=64, ge=8, description="RocksDB memory of the whole worker: one block cache, memtables charged to it"
    )
    group_instance_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$",
        description="static group membership: a restarted worker with the same id takes its partitions back at once "
        "(unique per worker; unset when replicas share one configuration)",
    )
    session_timeout_s: float = Field(
        default=10.0, ge=6, le=90, description="how soon a crashed worker's partitions go to another worker"
    )
    rules_file: Path | None = Field(default=None, description="the partnership's rule overrides (TOML or YAML)")
    web_port: int | None = Field(default=None, description="Faust web port; unset = no web server")
    batch_size: int = Field(default=1000, ge=1, description="records applied per batch before acks and state writes")
    batch_within_s: float = Field(default=0.05, gt=0, description="longest wait to fill a batch, in seconds")
    producer_linger_s: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="how long the worker's producer waits to fill a request (alerts, obligations, changelogs). 0 "
        "(send at once) keeps alerts fast: 10 ms saved CPU per event but tripled the median alert latency, each batch "
        "waiting twice (docs/performance.md)",
    )

    @property
    def table_dir(self) -> Path:
        """This worker's own data directory: two workers on one machine (other app, other instance) never share one."""
        path = self.data_dir / self.app_id
        return path / self.group_instance_id if self.group_instance_id else path

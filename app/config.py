"""Settings, read only here: environment variables with the KEZHAN_ prefix, plus DATABASE_URL."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KEZHAN_", env_file=".env", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "KEZHAN_DATABASE_URL"),
        description="PostgreSQL URL; unset starts the embedded PostgreSQL in data_dir.",
    )
    data_dir: Path = Field(default=Path(".kezhan"), description="Embedded database, dev keys.")
    encryption_key: str | None = Field(
        default=None, description="Base64 32-byte AES-GCM key for personal data at rest."
    )
    lookup_key: str | None = Field(
        default=None, description="Base64 32-byte HMAC key for exact-match lookups."
    )
    db_pool_size: int = 20
    db_read_pool_size: int = Field(
        default=10, description="Connections kept for single-row reads outside SQLAlchemy."
    )
    log_level: str = "INFO"
    api_key_cache_seconds: float = Field(
        default=10.0, description="How long a verified API key is trusted before re-checking."
    )
    max_upload_bytes: int = 1024**3
    job_worker_in_process: bool = Field(
        default=True, description="Run the job worker inside the API process."
    )
    segment_frames_min_customers: int = Field(
        default=20_000,
        description="Tenants with at least this many customers get segment previews from an "
        "in-memory copy of their customer columns (smaller ones are fast enough in SQL).",
    )
    segment_frames_max_customers: int = Field(
        default=2_000_000,
        description="Customers held in memory for segment previews, all tenants together "
        "(about 200 bytes each plus 35 per buying order: 370 MB for a million customers with "
        "five orders each); 0 turns the copies off.",
    )
    demo_data: bool = Field(
        default=True, description="Create a demo tenant on first start of the embedded DB."
    )

    @model_validator(mode="after")
    def _production_needs_real_secrets(self) -> Settings:
        if self.environment == "production":
            missing = [
                name
                for name, value in (
                    ("DATABASE_URL", self.database_url),
                    ("KEZHAN_ENCRYPTION_KEY", self.encryption_key),
                    ("KEZHAN_LOOKUP_KEY", self.lookup_key),
                )
                if not value
            ]
            if missing:
                raise ValueError(f"production requires {', '.join(missing)}")
        return self

    @cached_property
    def embedded(self) -> bool:
        return self.database_url is None


def get_settings() -> Settings:
    return Settings()

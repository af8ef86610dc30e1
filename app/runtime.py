"""What the app holds while it runs: engine, sessions, vault, key verifier, clock, job queue."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import procrastinate
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.config import Settings
from app.crypto import Vault
from app.services.auth import KeyVerifier
from app.services.segments.member_frames import MemberFrames

Clock = Callable[[], datetime]


@dataclass
class Runtime:
    settings: Settings
    database_url: str
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    read_sessions: async_sessionmaker[AsyncSession]
    read_pool: asyncpg.Pool
    vault: Vault
    keys: KeyVerifier
    clock: Clock
    jobs: procrastinate.App
    member_frames: MemberFrames

"""Copying the uploaded files the imported rows point at (`/uploads/<name>`: attachments and
avatars) from AgentIM's upload folder into the hub's. Both keep files flat under their names."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import attrs
import trio


@attrs.define
class FileCounts:
    copied: int = 0
    present: int = 0  # already in the hub's folder with the same size
    missing: list[str] = attrs.field(factory=list)  # referenced, but not in AgentIM's folder


def _copy_one(source: Path, target: Path, *, dry_run: bool) -> str:
    if not source.is_file():
        return "missing"
    if target.is_file() and target.stat().st_size == source.stat().st_size:
        return "present"
    if dry_run:
        return "copied"
    partial = target.with_name(f".{target.name}.import")
    shutil.copyfile(source, partial)
    os.replace(partial, target)  # readers never see half a file
    return "copied"


def _copy_all(names: Iterable[str], source: Path, target: Path, dry_run: bool) -> FileCounts:
    counts = FileCounts()
    if not dry_run:
        target.mkdir(parents=True, exist_ok=True)
    for name in sorted(names):
        outcome = _copy_one(source / name, target / name, dry_run=dry_run)
        if outcome == "missing":
            counts.missing.append(name)
        elif outcome == "present":
            counts.present += 1
        else:
            counts.copied += 1
    return counts


async def copy_files(
    names: Iterable[str], source: Path, target: Path, *, dry_run: bool
) -> FileCounts:
    return await trio.to_thread.run_sync(_copy_all, list(names), source, target, dry_run)

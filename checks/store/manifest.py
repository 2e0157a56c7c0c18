"""The manifest: SHA-256 hashes of the files learners are graded against (stored references and zoo files).

`checks/references/manifest.json` is written with the references (`python -m checks references` or
`python -m checks manifest`). The supervisor verifies it before any learner code runs and before it loads the
references into its own memory; a mismatch is a course error naming the file, never a learner failure. Batch grading
reads the manifest once, before the first submission, and hands every per-submission supervisor that in-memory copy,
so a submission that rewrote a reference or zoo file (and the manifest with it) cannot change what the next
submission is graded against: the next one stops with a course error instead.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from checks.course import Course, CourseError

MANIFEST_FILE = "manifest.json"


def manifest_path(course: Course) -> Path:
    return course.root / "checks" / "references" / MANIFEST_FILE


def manifest_files(course: Course) -> list[Path]:
    """The files the manifest covers: every day's stored references, the zoo's model files (weights, config,
    tokenizer; not the training records or model cards) and a model loader given as a file."""
    references = course.root / "checks" / "references"
    files = [path for path in sorted(references.glob("day*.*")) if path.suffix in (".pt", ".json")]
    zoo = course.root / "curriculum" / "models"
    for folder in sorted(p for p in zoo.glob("*") if (p / "model.safetensors").is_file()):
        files += [path for path in sorted(folder.iterdir()) if path.suffix == ".safetensors"
                  or path.name == "config.json" or (path.name.startswith("tokenizer") and path.suffix == ".json")]
    target, _, _ = course.model_loader.rpartition(":")
    if target.endswith(".py") and Path(target).is_file():
        files.append(Path(target).resolve())
    return files


def _key(course: Course, path: Path) -> str:
    try:
        return str(path.resolve().relative_to(course.root.resolve()))
    except ValueError:
        return str(path.resolve())


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def compute_manifest(course: Course) -> dict[str, str]:
    """Relative path (or absolute, outside the course) -> SHA-256 of each file the manifest covers."""
    return {_key(course, path): file_hash(path) for path in manifest_files(course)}


def write_manifest(course: Course) -> Path:
    path = manifest_path(course)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"format": 1, "files": compute_manifest(course)}, indent=2, sort_keys=True) + "\n")
    return path


def read_manifest(course: Course) -> dict[str, str]:
    """The stored manifest; CourseError when it is missing or unreadable."""
    path = manifest_path(course)
    command = _command(course)
    if not path.is_file():
        raise CourseError(f"{path} is missing: the course cannot prove its references and zoo files are intact; "
                          f"write it with `{command}`")
    try:
        files = json.loads(path.read_text())["files"]
    except (ValueError, KeyError, TypeError) as error:
        raise CourseError(f"{path} is unreadable ({error}); rewrite it with `{command}`") from None
    return {str(key): str(value) for key, value in files.items()}


def verify_manifest(course: Course, expected: dict[str, str] | None = None,
                    contents: dict[str, bytes] | None = None) -> dict[str, str]:
    """Check every covered file against `expected` (default: the stored manifest); return the hashes verified.
    `contents`: the covered files' bytes already read (`file_contents`), hashed instead of reading the files again.
    Raises CourseError naming the first file that is missing, changed or not in the manifest."""
    expected = read_manifest(course) if expected is None else expected
    current = compute_manifest(course) if contents is None else \
        {key: hashlib.sha256(data).hexdigest() for key, data in contents.items()}
    for key, digest in sorted(expected.items()):
        if key not in current:
            raise CourseError(f"course file {key} is listed in the manifest but missing: it was deleted or moved")
        if current[key] != digest:
            raise CourseError(f"course file {key} does not match the manifest (sha256 {current[key][:12]}..., "
                              f"expected {digest[:12]}...): it was changed after the references were built. "
                              f"Restore it (e.g. `git checkout -- {key}`) or, if the change is intended, rebuild "
                              f"with `{_command(course)}`")
    extra = sorted(set(current) - set(expected))
    if extra:
        raise CourseError(f"course file {extra[0]} is not in the manifest; rebuild it with `{_command(course)}`")
    return current


def _command(course: Course) -> str:
    from checks.store.references import rebuild_command

    days = list(course.days.values())
    if not days:
        return "python -m checks references --day all"
    return rebuild_command(days[0]).replace(f"--day {days[0].number}", "--day all")


def file_contents(course: Course) -> dict[str, bytes]:
    """The bytes of every file the manifest covers, by manifest key (kept by batch grading to restore them)."""
    return {_key(course, path): path.read_bytes() for path in manifest_files(course)}


def file_stats(course: Course) -> dict[str, tuple[int, ...]]:
    """(device, inode, size, mtime, ctime, mode) of every file the manifest covers, by manifest key. A file whose
    stat is unchanged has unchanged bytes: writing it, replacing it or setting its times updates its ctime, which
    only the system clock decides."""
    return {_key(course, path): _stat(path) for path in manifest_files(course)}


def _stat(path: Path) -> tuple[int, ...]:
    try:
        stat = path.stat()
    except OSError:
        return ()
    return stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_mode


def restore_changed(course: Course, expected: dict[str, str], contents: dict[str, bytes],
                    stats: dict[str, tuple[int, ...]] | None = None) -> list[str]:
    """Rewrite every covered file whose hash no longer matches `expected` from `contents`, and give back the mode
    recorded in `stats` to one re-permissioned; return their keys. With `stats` (`file_stats` of the verified files),
    a file whose stat is unchanged is not read again. Never raises for a file it cannot restore (one made unreadable
    to its owner is first made readable again): that file is listed, so its exercise fails, and grading goes on."""
    restored = []
    for key in expected:  # the verified files are exactly the manifest's (`verify_manifest` allows no other)
        if key not in contents:
            continue
        path = course.root / key  # a key outside the course is absolute
        recorded = stats.get(key) if stats is not None else None
        if recorded and _stat(path) == recorded:
            continue
        try:
            changed = _restore(path, expected[key], contents[key], recorded[5] if recorded else None)
        except OSError:
            changed = True
        if changed:
            restored.append(key)
    return restored


def _restore(path: Path, digest: str, data: bytes, mode: int | None) -> bool:
    """Make `path` hold `data` (whose hash is `digest`) and, when given, have `mode`; whether anything changed."""
    import stat

    changed = False
    if mode is not None and path.is_file() and path.stat().st_mode != mode:
        os.chmod(path, stat.S_IMODE(mode))
        changed = True
    try:
        same = path.is_file() and file_hash(path) == digest
    except PermissionError:
        os.chmod(path, stat.S_IMODE(path.stat().st_mode) | stat.S_IRUSR | stat.S_IWUSR)
        same, changed = file_hash(path) == digest, True
    if not same:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_file() and not os.access(path, os.W_OK):
            os.chmod(path, stat.S_IMODE(path.stat().st_mode) | stat.S_IWUSR)
        path.write_bytes(data)
        changed = True
    return changed

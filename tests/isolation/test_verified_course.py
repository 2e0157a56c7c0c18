"""The course's files verified once per batch (`checks.isolation.supervisor.VerifiedCourse`): a submission's supervisor
takes that copy only while every file's stat is unchanged, and verifies the files again otherwise, so a file changed
after the batch verified it stops grading with a course error as before."""

from __future__ import annotations

import os

import pytest

from checks.course import CourseError
from checks.isolation import supervisor
from checks.store.manifest import file_hash, manifest_files, verify_manifest


class _SharedZygote:
    """Stands in for a batch job's warm parent: a supervisor handed one forks none, and leaves it running at close."""

    def use_log(self, log) -> None:
        pass


def _supervisor(course, verified):
    return supervisor.Supervisor(course, list(course.days.values()), "cpu", forbid_reads=True,
                                 expected_manifest=verified.manifest, zygote=_SharedZygote(), verified=verified)


def test_a_supervisor_takes_the_batch_verified_files_without_hashing_them_again(fresh_course, monkeypatch):
    verified = supervisor.verify_course(fresh_course, list(fresh_course.days.values()))
    hashed = []
    monkeypatch.setattr(supervisor, "verify_manifest", lambda *args: hashed.append(1) or verify_manifest(*args))
    graded = _supervisor(fresh_course, verified)
    assert not hashed
    assert graded.stores is verified.stores and graded.contents is verified.contents


def test_a_file_changed_after_the_batch_verified_it_is_verified_again_and_stops_grading(fresh_course):
    verified = supervisor.verify_course(fresh_course, list(fresh_course.days.values()))
    target = next(path for path in manifest_files(fresh_course) if path.suffix == ".pt")
    target.write_bytes(target.read_bytes() + b"\0")
    with pytest.raises(CourseError, match=target.name):
        _supervisor(fresh_course, verified)


def test_stats_are_adopted_after_a_restore_only_when_the_bytes_are_the_verified_ones(fresh_course):
    verified = supervisor.verify_course(fresh_course, list(fresh_course.days.values()))
    target = next(path for path in manifest_files(fresh_course) if path.suffix == ".pt")
    original = target.read_bytes()
    target.write_bytes(original + b"\0")  # tampered: its stat changed, its bytes are not the verified ones
    assert not verified.refresh_stats(fresh_course)
    target.write_bytes(original)  # restored: a new stat, the verified bytes
    assert file_hash(target) == verified.manifest[next(key for key in verified.manifest if key.endswith(target.name))]
    before = dict(verified.stats)
    assert verified.refresh_stats(fresh_course) and verified.stats != before
    os.utime(target)  # any later change shows as a stat that no longer matches: verified again
    assert supervisor.file_stats(fresh_course) != verified.stats

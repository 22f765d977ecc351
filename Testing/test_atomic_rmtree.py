"""core.atomic_fs.rmtree deletes a file or a whole folder (its files concurrently, subfolders by
shutil), never follows symbolic links, ignores what is already gone, and deletes a folder of
files without importing shutil."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from RefractureRiskLib.core.atomic_fs import rmtree


def _files(folder: Path, n: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (folder / f"m{i}.nrrd").write_bytes(os.urandom(2000))


def test_a_folder_of_files_and_a_nested_tree_are_deleted(tmp_path) -> None:
    _files(tmp_path / "flat", 9)
    _files(tmp_path / "deep", 3)
    _files(tmp_path / "deep" / "a" / "b", 4)
    rmtree(tmp_path / "flat")
    rmtree(tmp_path / "deep")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.name == "nt", reason="symbolic links need privileges on Windows")
def test_links_are_removed_not_followed(tmp_path) -> None:
    keep = tmp_path / "keep"
    _files(keep, 2)
    out = tmp_path / "out"
    _files(out, 3)
    (out / "to_folder").symlink_to(keep, target_is_directory=True)
    (out / "to_file").symlink_to(keep / "m0.nrrd")
    rmtree(out)
    assert not out.exists()
    assert sorted(p.name for p in keep.iterdir()) == ["m0.nrrd", "m1.nrrd"]
    link = tmp_path / "link"
    link.symlink_to(keep, target_is_directory=True)
    rmtree(link)  # a link to a folder: the link goes, the folder stays
    assert not link.exists() and keep.is_dir()


def test_a_file_and_a_missing_path(tmp_path) -> None:
    (tmp_path / "f.txt").write_text("x")
    rmtree(tmp_path / "f.txt")
    rmtree(tmp_path / "gone")
    rmtree(tmp_path / "gone" / "deeper")
    assert list(tmp_path.iterdir()) == []


def test_a_folder_of_files_is_deleted_without_shutil(tmp_path) -> None:
    _files(tmp_path / "flat", 8)
    code = (
        "import sys; from pathlib import Path; from RefractureRiskLib.core.atomic_fs import "
        "rmtree; rmtree(Path(sys.argv[1])); print('shutil' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "flat")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "False"
    assert not (tmp_path / "flat").exists()

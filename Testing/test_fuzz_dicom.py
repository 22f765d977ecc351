"""A short run of ``bench/fuzz_dicom.py`` (mutated real and phantom DICOM files against
``load_study``): every mutation ends in a loaded study or the project's own InputError."""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "fuzz_dicom.py"
N_MUTATIONS = 300


def _fuzzer():
    spec = importlib.util.spec_from_file_location("fuzz_dicom", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["fuzz_dicom"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_mutated_dicom_never_ends_in_anything_but_input_error(tmp_path):
    fuzz = _fuzzer()
    t0 = time.perf_counter()
    report = fuzz.run(N_MUTATIONS, seed=11, work=tmp_path)
    seconds = time.perf_counter() - t0
    assert report.n == N_MUTATIONS
    first = next(iter(report.examples.values()), (None, None, ""))[2]
    assert report.other == 0, f"{dict(report.signatures)}\n{first}"
    # the mutations must reach both ends: some studies still load, most are refused
    assert report.loaded > 0 and report.input_errors > N_MUTATIONS // 4
    assert seconds < 60


def test_the_mutations_change_the_files(tmp_path):
    import numpy as np

    fuzz = _fuzzer()
    seeds, _ = fuzz.build_corpus(tmp_path, real=False)
    rng = np.random.default_rng(0)
    original = seeds[0].original[0]
    changed = [fuzz.mutate(original, rng) != original for _ in range(50)]
    assert sum(changed) >= 45


def test_a_run_stopped_by_its_deadline_counts_only_the_mutations_made(tmp_path):
    """A long run that cannot finish in time reports the number it made, not the number asked."""
    fuzz = _fuzzer()
    asked = 100_000  # far more than fit in the 10 s (about 40 per second at best)
    report = fuzz.run(asked, seed=3, real=False, work=tmp_path, deadline=time.time() + 10.0)
    assert 0 < report.n < asked
    assert report.loaded + report.input_errors + report.other == report.n


def test_a_copy_of_a_parsed_seed_writes_what_reading_and_writing_the_file_writes(tmp_path):
    """The harness reads each seed file once and mutates copies (for speed): an unmutated copy
    must write byte for byte what ``dcmread`` + ``save_as`` write, for every seed file."""
    import io

    import pydicom

    fuzz = _fuzzer()
    seeds, _ = fuzz.build_corpus(tmp_path)
    checked = 0
    for seed in seeds:
        for data in seed.original:
            plain, copied = io.BytesIO(), io.BytesIO()
            pydicom.dcmread(io.BytesIO(data), force=True).save_as(plain, enforce_file_format=False)
            fuzz._fresh_copy(fuzz._template(data)).save_as(copied, enforce_file_format=False)
            assert copied.getvalue() == plain.getvalue(), seed.name
            checked += 1
    assert checked >= 10


def test_mutating_a_copy_leaves_the_parsed_seed_as_it_was(tmp_path):
    """The same random stream gives the same mutated files twice: no mutation reached back into
    the shared parsed seed (its elements are raw and immutable; converted ones live in the copy)."""
    import numpy as np

    fuzz = _fuzzer()
    seeds, _ = fuzz.build_corpus(tmp_path)
    for seed in seeds:
        data = seed.original[0]
        first = [fuzz.mutate(data, np.random.default_rng(5)) for _ in range(1)]
        rng = np.random.default_rng(9)
        for _ in range(40):
            fuzz.mutate(data, rng)
        again = [fuzz.mutate(data, np.random.default_rng(5)) for _ in range(1)]
        assert first == again, seed.name

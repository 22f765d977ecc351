"""The owner tag of atomic output sets without socket or uuid (core/atomic_fs): the same tag and
the same random transaction suffix as before, and a cold import of ``core.atomic`` that loads
none of the modules it no longer needs up front."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys

from RefractureRiskLib.core.atomic import OutputSet
from RefractureRiskLib.core.atomic_fs import ARTEFACT, host_name, host_tag


def test_host_tag_is_the_sha256_of_the_host_name() -> None:
    assert host_name() == socket.gethostname()
    assert host_tag() == hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def test_transactions_are_named_as_artefacts_with_a_random_suffix(tmp_path) -> None:
    suffixes = set()
    for _ in range(20):
        txn = OutputSet().txn
        match = ARTEFACT.match(f".out.staging-{txn}")
        assert match is not None, txn
        assert match["host"] == host_tag() and match["pid"] == str(os.getpid())
        suffixes.add(txn.rsplit("-", 1)[1])
    assert len(suffixes) == 20


def test_a_cold_import_loads_no_socket_uuid_ctypes_or_shutil() -> None:
    probe = (
        "import json, sys\n"
        "from RefractureRiskLib.core.atomic import OutputSet\n"
        "OutputSet()\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    modules = set(json.loads(done.stdout))
    assert "RefractureRiskLib.core.atomic_fs" in modules
    loaded = modules & {"socket", "uuid", "ctypes", "shutil"}
    assert not loaded, sorted(loaded)

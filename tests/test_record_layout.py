"""The record layout: C (pktlab_record.h, compiled by the system compiler) == ctypes == numpy.

The kernel writes pl_records laid out by the C compiler; Python reads them through the ctypes
Record and the numpy RECORD_DTYPE that pktlab/record.py builds from the same header. A field
read at the wrong offset would silently turn every comparison into noise, so this test asks the
compiler itself: a small generated C program prints sizeof and offsetof/sizeof of every field,
and the value of every PL_* constant Python read from the headers.
"""

import ctypes
import os
import shutil
import subprocess

import pytest

from pktlab.packet import record as R
from pktlab.kernel.ringbuf import CTL_DTYPE

SNIPPETS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bpf_snippets")

# Enough of the kernel's vocabulary for pktlab_parse.h to compile in userspace (its constants
# are checked too).
SHIM = """
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <arpa/inet.h>
typedef uint16_t __be16;
typedef uint32_t __be32;
#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif
#define bpf_ntohs(x) ntohs(x)
#define bpf_ntohl(x) ntohl(x)
#include "pktlab_parse.h"
"""


@pytest.fixture(scope="module")
def c_layout(tmp_path_factory):
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no system C compiler (gcc): install gcc (scripts/setup.sh does) to check "
                    "the record layout against C")
    names = [n for n, _o, _s in R.field_layout()]
    lines = [SHIM, "int main(void) {",
             '  printf("size %zu\\n", sizeof(struct pl_record));']
    for n in names:
        lines.append(f'  printf("field {n} %zu %zu\\n", offsetof(struct pl_record, {n}), '
                     f"sizeof(((struct pl_record *)0)->{n}));")
    for k in R.constants():
        lines.append(f'  printf("const {k} %llu\\n", (unsigned long long)({k}));')
    lines.append('  printf("ctlsize %zu\\n", sizeof(struct pl_ctl));')
    for n in CTL_DTYPE.names:
        lines.append(f'  printf("ctl {n} %zu %zu\\n", offsetof(struct pl_ctl, {n}), '
                     f"sizeof(((struct pl_ctl *)0)->{n}));")
    lines += ["  return 0;", "}"]
    d = tmp_path_factory.mktemp("layout")
    src, exe = d / "layout.c", d / "layout"
    src.write_text("\n".join(lines) + "\n")
    r = subprocess.run([cc, "-DPKTLAB_USERSPACE", "-Wall", "-Wno-unknown-pragmas",
                        "-Wno-unused-function", f"-I{SNIPPETS}", "-o", str(exe), str(src)],
                       capture_output=True, text=True)
    assert r.returncode == 0, f"compiling pktlab_record.h failed:\n{r.stderr}"
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    size, fields, consts = None, {}, {}
    for line in out.splitlines():
        parts = line.split()
        if parts[0] == "size":
            size = int(parts[1])
        elif parts[0] == "field":
            fields[parts[1]] = (int(parts[2]), int(parts[3]))
        elif parts[0] == "ctlsize":
            CTL_C["size"] = int(parts[1])
        elif parts[0] == "ctl":
            CTL_C[parts[1]] = (int(parts[2]), int(parts[3]))
        else:
            consts[parts[1]] = int(parts[2])
    return size, fields, consts


CTL_C = {}


def test_ring_control_block_matches_c(c_layout):
    """struct pl_ctl, which Python reads and writes in the kernel's memory (pktlab/ringbuf.py):
    a wrong offset here would move `tail` onto a kernel counter."""
    assert CTL_C["size"] == CTL_DTYPE.itemsize == 192
    for name in CTL_DTYPE.names:
        dt, off = CTL_DTYPE.fields[name][:2]
        assert CTL_C[name] == (off, dt.itemsize), \
            f"pl_ctl.{name}: C {CTL_C[name]}, numpy {(off, dt.itemsize)}"
    assert CTL_DTYPE.fields["tail"][1] % 64 == 0, "tail shares a cache line with the kernel's fields"
    assert CTL_DTYPE.fields["seen"][0].shape == (R.constants()["PL_ST__COUNT"],)


def test_size_matches_c(c_layout):
    size, _f, _c = c_layout
    assert ctypes.sizeof(R.Record) == size
    assert R.RECORD_DTYPE.itemsize == size
    assert R.RECORD_STRUCT.size == size
    assert size % 8 == 0, "the header promises a size that is a multiple of 8"


def test_every_field_offset_and_size_match_c(c_layout):
    _s, cfields, _c = c_layout
    for name, off, size in R.field_layout():
        assert cfields[name] == (off, size), f"pl_record.{name}: C says {cfields[name]}, " \
                                             f"ctypes says {(off, size)}"
        assert R.RECORD_DTYPE.fields[name][1] == off, f"numpy offset of {name}"
        assert R.RECORD_DTYPE.fields[name][0].itemsize == size, f"numpy size of {name}"


def test_python_saw_every_field(c_layout):
    """The fields Python parsed from the header tile the C struct with no gap: none was missed
    (a field the regex skipped would leave a hole) and there is no padding."""
    size, cfields, _c = c_layout
    spans = sorted(cfields.values())
    pos = 0
    for off, sz in spans:
        assert off == pos, f"gap or overlap at byte {pos} (next field at {off})"
        pos = off + sz
    assert pos == size
    assert list(R.RECORD_DTYPE.names) == [n for n, _o, _s in R.field_layout()]


def test_constants_python_read_are_the_compilers(c_layout):
    _s, _f, consts = c_layout
    mine = dict(R.constants())
    assert mine == consts
    # the names the lessons and the walker rely on are all there
    for k in ("PL_VLAN_MAX", "PL_IPV6_EXT_MAX", "PL_PAYLOAD_PEEK", "PL_HASH_BYTES",
              "PL_FNV_OFFSET", "PL_FNV_PRIME", "PL_ST_OK", "PL_L_PAYLOAD", "PL_L7_DNS",
              "PL_F_FRAGMENT", "PL_HOOK_WALKER"):
        assert k in mine


def test_a_record_round_trips_through_bytes_numpy_and_dict():
    import json

    import numpy as np

    from pktlab.packet.walker import walk_record
    f = bytes.fromhex("00005e00530200005e005301080045000028000140004006b3b1c000020ac6336414"
                      "c000005000000001000000005002fa f000000000".replace(" ", ""))
    r = walk_record(f)
    b = bytes(r)
    assert R.record_from_bytes(b) == r
    arr = R.records_from_buffer(b + b)
    assert len(arr) == 2 and arr[1]["sport"] == r.sport == 49152
    assert R.compare_fields(arr[0], r) == []
    assert R.compare_fields(np.frombuffer(b, R.RECORD_DTYPE)[0], b) == []
    d = r.to_dict()
    json.dumps(d)
    assert d["src_ip"] == "192.0.2.10" and d["status_name"] == "OK"
    other = R.record_from_bytes(b)
    other.ttl = 1
    other.ts_ns = 5
    assert R.compare_fields(r, other) == ["ttl"]
    assert R.compare_fields(r, other, ignore=()) == ["ts_ns", "ttl"]


def test_wrong_sizes_are_refused_with_a_pktlab_error():
    from pktlab.errors import PktlabError
    with pytest.raises(PktlabError, match=str(R.RECORD_STRUCT.size)):
        R.record_from_bytes(b"\0" * 10)
    with pytest.raises(PktlabError, match="multiple"):
        R.records_from_buffer(b"\0" * (R.RECORD_STRUCT.size + 1))


def test_importing_reads_nothing():
    """The header is read on first use, not at import (STYLE: nothing at import time)."""
    code = ("import pktlab.packet.record as r, pktlab.packet.walker, pktlab.packet.views, pktlab.packet.capture, "
            "pktlab.cli.cast, pktlab.packet.headers, sys; "
            "assert r._read_defines.cache_info().currsize == 0; "
            "assert 'scapy' not in sys.modules, 'scapy imported at import time'")
    env = dict(os.environ)
    subprocess.run([os.sys.executable, "-c", code], check=True, env=env,
                   cwd=os.path.dirname(SNIPPETS))

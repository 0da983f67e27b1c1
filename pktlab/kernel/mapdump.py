"""A learner program's maps as plain data: what `pktlab run` prints at the end.

    maps, info = dump(prog, skip={"pktlab_verdicts"})
    maps   {"<map>": {"<key>": value}}
    info   {"<map>": {"type", "key_size", "value_size", "max_entries", "per_cpu", "entries",
                      "note"}}

Keys and values are read from the fds pktlab holds (a learner never holds one) and decoded
with bcc's own description of the map's key and value types:
- integers are decimal numbers; a key is always a string (a JSON object's keys are), so an
  integer key is its decimal digits and a struct key is its fields as compact JSON text;
- a struct (or union) is an object of its fields, an array a list, a char array its text;
- a per-CPU value is {"per_cpu": [one value per possible CPU], "sum": their sum} (a struct's
  sum is field by field);
- an ARRAY has every index whether written or not: only its non-zero entries are listed, and
  info's note says so.
"""

import ctypes
import json

from . import bpfobj
from .mappolicy import ARRAYS, PER_CPU

#: entries read per map at most (a map of the largest size allowed has millions)
DUMP_MAX = 1 << 16
UNREADABLE = {"QUEUE": "a QUEUE cannot be read without taking its entries out",
              "STACK": "a STACK cannot be read without taking its entries out",
              "RINGBUF": "a RINGBUF is a stream, read by a consumer, not a table",
              "BLOOM_FILTER": "a BLOOM_FILTER can only be asked about a value, not listed"}


def ctype_of(desc):
    """bcc's JSON description of a key or value type -> a ctypes type."""
    from .bpf import bcc
    return bcc().BPF._decode_table_type(json.loads(desc))


def plain(v):
    """A decoded ctypes value as JSON data: ints, objects of fields, lists, text."""
    if isinstance(v, (ctypes.Structure, ctypes.Union)):
        # bcc names the padding it adds __pad_N / __pad_end: not the learner's fields
        return {f[0]: plain(getattr(v, f[0])) for f in v._fields_
                if not f[0].startswith("__pad")}
    if isinstance(v, ctypes.Array):
        return [plain(x) for x in v]
    if isinstance(v, ctypes._SimpleCData):
        return plain(v.value)
    if isinstance(v, bytes):
        return v.split(b"\0")[0].decode("latin-1")
    return v


def total(values):
    """The sum of one value per CPU: numbers added, structs field by field, arrays element by
    element (text: the first CPU's)."""
    first = values[0]
    if isinstance(first, dict):
        return {k: total([v[k] for v in values]) for k in first}
    if isinstance(first, list):
        return [total(list(col)) for col in zip(*values)]
    if isinstance(first, (int, float)) and not isinstance(first, bool):
        return sum(values)
    return first


def _decoder(desc, size):
    """bytes -> plain data by bcc's description of the type; hex text when there is none, or
    when it does not have the map's size (the description came from the worker: it is
    checked against the kernel's word, not trusted)."""
    try:
        t = ctype_of(desc)
    except Exception:            # bcc raises a bare Exception for a type it cannot decode
        t = None
    if t is None or ctypes.sizeof(t) != size:
        return lambda b: bytes(b[:size]).hex()
    return lambda b: plain(t.from_buffer_copy(b[:size]))


def key_text(k):
    return str(k) if isinstance(k, int) else json.dumps(k, separators=(",", ":"))


def _pairs(m, value_bytes):
    key_size = m.info.key_size
    got = bpfobj.map_batch(m.fd, key_size, value_bytes, DUMP_MAX)
    if got is None:
        got = [(k, bpfobj.map_lookup(m.fd, k, value_bytes))
               for k in bpfobj.map_keys(m.fd, key_size, DUMP_MAX)]
    return [(k, v) for k, v in got if v is not None]


def dump_map(m):
    """One map: ({key text: value}, info)."""
    from .bpf import possible_cpus
    kind = m.type_name
    info = {"type": kind, "key_size": m.info.key_size, "value_size": m.info.value_size,
            "max_entries": m.info.max_entries, "per_cpu": kind in PER_CPU, "entries": 0,
            "note": None}
    if kind in UNREADABLE:
        info["note"] = UNREADABLE[kind]
        return {}, info
    ncpus = possible_cpus() if kind in PER_CPU else 1
    stride = (m.info.value_size + 7) // 8 * 8 if kind in PER_CPU else m.info.value_size
    key_of = _decoder(m.key_desc, m.info.key_size)
    value_of = _decoder(m.leaf_desc, m.info.value_size)
    pairs = _pairs(m, stride * ncpus)
    out = {}
    for kb, vb in pairs:
        if kind in ARRAYS and not any(vb):
            continue
        key = key_of(kb)
        if kind in PER_CPU:
            per = [value_of(vb[c * stride:c * stride + m.info.value_size])
                   for c in range(ncpus)]
            value = {"per_cpu": per, "sum": total(per)}
        else:
            value = value_of(vb)
        out[key_text(key)] = value
    info["entries"] = len(out)
    notes = []
    if kind in ARRAYS:
        notes.append(f"non-zero entries only ({len(out)} of {m.info.max_entries}: an array has "
                     "every index, written or not)")
    if len(pairs) >= DUMP_MAX:
        notes.append(f"the first {DUMP_MAX} entries only")
    info["note"] = "; ".join(notes) or None
    return out, info


def dump(prog, skip=()):
    """Every map of a LearnerProgram but those in `skip`: (maps, info)."""
    maps, info = {}, {}
    for name in sorted(prog.maps):
        if name in skip:
            continue
        maps[name], info[name] = dump_map(prog.maps[name])
    return maps, info

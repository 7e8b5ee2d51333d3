"""Durable state files: plain tensors, ints and strings (no pickle), a checksum, atomic replacement.

A state file is ``torch.save`` of a flat dict whose values are Tensors, ints, floats or strings, so
``torch.load(path, weights_only=True)`` reads it. Two entries are added on save: ``format`` (what
wrote it) and ``checksum`` (SHA-256 of every other entry), so a truncated or bit-flipped file is
refused with a clear message instead of being half-loaded.
"""

import hashlib
import io
import json
import os
import tempfile
from collections.abc import Mapping

import torch
from torch import Tensor

StateValue = Tensor | int | float | str
State = dict[str, StateValue]


class StateFileError(RuntimeError):
    """A state file cannot be used: unreadable, corrupt, of another kind or of an unknown version."""


def checksum(state: Mapping[str, StateValue]) -> str:
    """SHA-256 over the entries in key order; tensors contribute their dtype, shape and bytes."""
    digest = hashlib.sha256()
    for key in sorted(state):
        if key == "checksum":
            continue
        value = state[key]
        digest.update(key.encode() + b"\0")
        if isinstance(value, Tensor):
            flat = value.detach().cpu().contiguous().reshape(-1)
            digest.update(f"{value.dtype}{tuple(value.shape)}".encode())
            digest.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")
        else:
            digest.update(f"{type(value).__name__}:{value!r}".encode())
        digest.update(b"\1")
    return digest.hexdigest()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Writes data so that ``path`` holds either its old content or all of ``data``, never a mix.

    Temp file in the same folder, write, flush, fsync, ``os.replace``, then fsync the folder so the
    rename itself survives a power cut.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise
    folder_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(folder_fd)
    finally:
        os.close(folder_fd)


def save_state(path: str | os.PathLike, state: Mapping[str, StateValue], kind: str) -> None:
    """Atomically writes a flat state dict, tagged with its kind and a checksum."""
    for key, value in state.items():
        if not isinstance(value, (Tensor, int, float, str)):
            raise TypeError(f"state entry {key!r} must be a Tensor, int, float or str, got {type(value).__name__}")
    tagged: State = {key: value.detach().cpu() if isinstance(value, Tensor) else value for key, value in state.items()}
    tagged["format"] = kind
    tagged["checksum"] = checksum(tagged)
    buffer = io.BytesIO()
    torch.save(tagged, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_state(path: str | os.PathLike, kind: str) -> State:
    """Reads a state file written by :func:`save_state` for ``kind``; checks it before returning it.

    Raises:
        FileNotFoundError: no file at path.
        StateFileError: the file is truncated, corrupt, not a torch_al state, or of another kind.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no torch_al state file at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for a damaged zip archive
        raise StateFileError(
            f"{path} is truncated or corrupt and cannot be read ({type(error).__name__}: {error}); "
            "the file was not modified. Use an earlier copy, or start a new state."
        ) from error
    if not isinstance(state, dict) or "checksum" not in state or "format" not in state:
        raise StateFileError(f"{path} is not a torch_al state file")
    if state["format"] != kind:
        raise StateFileError(f"{path} holds a {state['format']!r} state, expected {kind!r}")
    if checksum(state) != state["checksum"]:
        raise StateFileError(f"{path} is corrupt: its checksum does not match its content; the file was not modified")
    return state


def to_json(value) -> str:
    """Canonical JSON (sorted keys) so equal metadata gives equal bytes and equal checksums."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))

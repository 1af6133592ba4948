"""The tensors of a TorchScript archive, read without TorchScript (which PyTorch has deprecated).

A TorchScript file is a zip holding `<name>/data.pkl`, a pickle of the module tree (each module an object
of a `__torch__.*` class whose attributes are its submodules, tensors and flags), and `<name>/data/<key>`,
the raw bytes of each tensor's storage. Reading it takes a restricted unpickler: module classes become
plain attribute holders, tensors are rebuilt from the stored bytes, and any other global (code) is
refused, so a hostile file cannot run anything. The result is what the scripted module's `state_dict()`
gives: dotted attribute names -> tensors.
"""

from __future__ import annotations

import collections
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from cips3d.errors import CheckpointError

_STORAGE_DTYPES = {
    "FloatStorage": torch.float32,
    "DoubleStorage": torch.float64,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}
"""The legacy storage classes a pickled tensor names, and the element type each stands for."""


class _ScriptModule:
    """A module of the archive: its pickled attributes land in `__dict__` (pickle's default BUILD)."""


def _rebuild_tensor(storage: torch.Tensor, offset: int, size, stride, *_: Any) -> torch.Tensor:
    """torch._utils._rebuild_tensor_v2's arguments (storage, offset, size, stride, requires_grad,
    backward hooks[, metadata]) -> a tensor viewing the storage."""
    return storage.as_strided(tuple(size), tuple(stride), offset)


def _as_it_is(value: Any, *_: Any) -> Any:
    """The first argument: a parameter's data (`_rebuild_parameter(data, requires_grad, hooks)`), or the
    value of torch.jit._pickle's list builders and type tags, whose TorchScript types are not needed."""
    return value


_ALLOWED = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _as_it_is,
    ("collections", "OrderedDict"): collections.OrderedDict,
    **{
        ("torch.jit._pickle", name): _as_it_is
        for name in (
            "build_intlist",
            "build_doublelist",
            "build_boollist",
            "build_tensorlist",
            "restore_type_tag",
        )
    },
}
"""The only globals a module's pickle may name (besides its `__torch__` classes and storage types)."""


class _ArchiveUnpickler(pickle.Unpickler):
    def __init__(self, file, archive: zipfile.ZipFile, prefix: str) -> None:
        super().__init__(file)
        self.archive, self.prefix = archive, prefix

    def find_class(self, module: str, name: str) -> Any:
        if module.startswith("__torch__"):
            return _ScriptModule
        if (module, name) in _ALLOWED:
            return _ALLOWED[module, name]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _STORAGE_DTYPES[name]
        raise pickle.UnpicklingError(f"it names {module}.{name}, which a module's weights never need")

    def persistent_load(self, pid: Any) -> torch.Tensor:
        """('storage', dtype, key, location, numel) -> a flat tensor of the stored bytes."""
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"it refers to {pid!r}, not to a stored tensor")
        _, dtype, key, _location, numel = pid
        if not isinstance(dtype, torch.dtype):
            raise pickle.UnpicklingError(f"its storage {key} has no known element type")
        raw = bytearray(self.archive.read(f"{self.prefix}data/{key}"))
        return torch.frombuffer(raw, dtype=dtype, count=numel) if numel else torch.empty(0, dtype=dtype)


def _named_tensors(node: _ScriptModule, prefix: str = "") -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for name, value in vars(node).items():
        if isinstance(value, torch.Tensor):
            out[prefix + name] = value
        elif isinstance(value, _ScriptModule):
            out |= _named_tensors(value, f"{prefix}{name}.")
    return out


def read_torchscript_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """The parameters and buffers of the TorchScript module saved at `path`, by dotted name (as its
    `state_dict()` names them), on the CPU. A `CheckpointError` when it is not such an archive."""
    try:
        with zipfile.ZipFile(path) as archive:
            pickles = [n for n in archive.namelist() if n.count("/") == 1 and n.endswith("/data.pkl")]
            if len(pickles) != 1:
                raise pickle.UnpicklingError("it holds no module pickle (data.pkl)")
            prefix = pickles[0].removesuffix("data.pkl")
            with archive.open(pickles[0]) as file:
                root = _ArchiveUnpickler(file, archive, prefix).load()
    except (OSError, zipfile.BadZipFile, pickle.UnpicklingError, KeyError, EOFError, ValueError) as err:
        raise CheckpointError(f"{path} is not a readable TorchScript archive ({err}).") from None
    if not isinstance(root, _ScriptModule):
        raise CheckpointError(f"{path} is not a readable TorchScript archive (it holds no module).")
    return _named_tensors(root)  # views of buffers read for them alone: no copy needed

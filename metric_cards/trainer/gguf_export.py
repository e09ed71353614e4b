"""Write a torch Llama model back into GGUF, so llama.cpp serves the weights being trained.

The original GGUF is the template: its metadata (architecture, hyper-parameters, the tokenizer,
the chat template) is copied as is, and every tensor it holds is replaced by the model's current
weights, in the same order and under the same name, as F16 (matrices) or F32 (norms, as llama.cpp
keeps them). Never a lossy quantisation: the server must sample from the policy being trained.

Two things transformers does on loading a Llama GGUF are undone here: HF parameter names are
mapped back to GGUF tensor names (`gguf.get_tensor_name_map`), and the rows of `q_proj`/`k_proj`
are permuted back into llama.cpp's rotary layout (transformers reverses `convert_hf_to_gguf`'s
`permute` on load; `permute_for_gguf` is that permutation).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import gguf
import numpy as np

SUPPORTED_ARCHITECTURES = ("llama",)
# Keys the template carries about its own encoding, not about the model: rewritten or dropped.
_DROPPED_KEYS = ("general.architecture", "general.file_type", "general.quantization_version")


class GGUFExportError(RuntimeError):
    """The template cannot be written back (unsupported architecture, a tensor without a source)."""


def permute_for_gguf(weights: np.ndarray, n_head: int) -> np.ndarray:
    """HF's q/k row order -> llama.cpp's (inverse of transformers' `_reverse_permute_weights`)."""
    dim = weights.shape[0] // n_head // 2
    return weights.reshape(n_head, 2, dim, *weights.shape[1:]).swapaxes(1, 2).reshape(weights.shape)


@dataclass(frozen=True)
class _TensorSlot:
    name: str
    shape: tuple[int, ...]  # numpy shape (the reverse of ggml's ne)


@dataclass(frozen=True)
class GGUFTemplate:
    """What is copied from the original file: metadata fields and the tensors' names and shapes."""

    path: str
    architecture: str
    fields: tuple[tuple[str, Any, gguf.GGUFValueType, gguf.GGUFValueType | None], ...]
    tensors: tuple[_TensorSlot, ...]
    n_head: int
    n_head_kv: int
    n_layers: int


@lru_cache(maxsize=4)
def read_template(path: str) -> GGUFTemplate:
    reader = gguf.GGUFReader(path)
    arch_field = reader.get_field("general.architecture")
    architecture = str(arch_field.contents()) if arch_field is not None else "?"
    if architecture not in SUPPORTED_ARCHITECTURES:
        raise GGUFExportError(
            f"{path}: architecture {architecture!r} is not supported for export (only "
            f"{', '.join(SUPPORTED_ARCHITECTURES)})"
        )
    fields = []
    for field in reader.fields.values():
        if field.name.startswith("GGUF.") or field.name in _DROPPED_KEYS:
            continue
        main_type = field.types[0]
        sub_type = field.types[-1] if main_type == gguf.GGUFValueType.ARRAY else None
        fields.append((field.name, field.contents(), main_type, sub_type))

    def number(key: str) -> int:
        found = reader.get_field(f"{architecture}.{key}")
        if found is None:
            raise GGUFExportError(f"{path}: no {architecture}.{key} in the metadata")
        return int(found.contents())

    # ggml's ne lists dimensions fastest first; numpy's shape is the reverse.
    tensors = tuple(
        _TensorSlot(t.name, tuple(int(d) for d in reversed(t.shape))) for t in reader.tensors
    )
    return GGUFTemplate(
        path=path,
        architecture=architecture,
        fields=tuple(fields),
        tensors=tensors,
        n_head=number("attention.head_count"),
        n_head_kv=number("attention.head_count_kv"),
        n_layers=number("block_count"),
    )


def gguf_tensors(state_dict: dict[str, Any], template: GGUFTemplate) -> dict[str, np.ndarray]:
    """The model's weights as float32 numpy arrays under GGUF names, in llama.cpp's layout."""
    arch = next(a for a, name in gguf.MODEL_ARCH_NAMES.items() if name == template.architecture)
    name_map = gguf.get_tensor_name_map(arch, template.n_layers)
    out: dict[str, np.ndarray] = {}
    for hf_name, tensor in state_dict.items():
        name = name_map.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            continue
        array = tensor.detach().to("cpu").float().numpy()
        if ".attn_q." in name:
            array = permute_for_gguf(array, template.n_head)
        elif ".attn_k." in name:
            array = permute_for_gguf(array, template.n_head_kv)
        out[name] = array
    return out


def write_gguf(
    state_dict: dict[str, Any],
    template_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
) -> Path:
    """Write `state_dict` (a Llama model's) as a GGUF at `out_path`, atomically (a reader never
    sees half a file; a running server keeps its mapping of the old one)."""
    template = read_template(str(template_path))
    arrays = gguf_tensors(state_dict, template)
    out = Path(out_path)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    writer = gguf.GGUFWriter(str(tmp), template.architecture)
    try:
        for name, value, main_type, sub_type in template.fields:
            writer.add_key_value(name, value, main_type, sub_type=sub_type)
        writer.add_file_type(int(gguf.LlamaFileType.MOSTLY_F16))
        for slot in template.tensors:
            array = arrays.get(slot.name)
            if array is None:
                raise GGUFExportError(f"the model has no weight for GGUF tensor {slot.name}")
            if array.shape != slot.shape:
                raise GGUFExportError(
                    f"{slot.name}: the model's weight has shape {array.shape}, the template "
                    f"{slot.shape}"
                )
            # llama.cpp keeps 1-D tensors (norms) in F32; matrices in F16.
            data = array.astype(np.float32 if array.ndim == 1 else np.float16)
            writer.add_tensor(slot.name, data)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(tmp, out)
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)
        raise
    return out
